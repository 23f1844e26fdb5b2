/**
 * What the sandbox needs to know about this host (bwrap.ts stays pure): which system trees exist and how,
 * which secret paths sit inside them, and where /etc's symlinks lead outside them. Read per command, so a
 * package installed meanwhile (or /etc/sam written by a boot) is seen at once; it is a handful of lstats.
 */
import { nodeFs, nodePath } from "../../runtime/lazy-node-modules.ts";
import { type HostEntry, type HostLayout, SECRET_PATHS, SYSTEM_DIRS } from "./bwrap.ts";

function under(p: string, root: string): boolean {
  return p === root || p.startsWith(root.endsWith("/") ? root : root + "/");
}

/** `extraSecrets`: the agent's token file and data dir, masked too should they live under /etc or /usr. */
export function readHostLayout(extraSecrets: string[] = []): HostLayout {
  const fs = nodeFs();
  const system: HostEntry[] = [];
  for (const path of SYSTEM_DIRS) {
    try {
      const st = fs.lstatSync(path);
      if (st.isSymbolicLink()) system.push({ path, kind: "symlink", target: fs.readlinkSync(path) });
      else if (st.isDirectory()) system.push({ path, kind: "dir" });
    } catch {
      // absent on this host (lib32, libx32)
    }
  }
  const bound = system.filter((e) => e.kind === "dir").map((e) => e.path);
  const masked: HostLayout["masked"] = [];
  for (const raw of [...SECRET_PATHS, ...extraSecrets]) {
    const path = nodePath().resolve(raw);
    if (!bound.some((b) => under(path, b))) continue;
    try {
      const st = fs.lstatSync(path);
      masked.push({ path, kind: st.isDirectory() ? "dir" : "file" });
    } catch {
      // not on this host
    }
  }
  const extraReadOnly: string[] = [];
  for (const link of ["/etc/resolv.conf", "/etc/localtime"]) {
    try {
      const real = fs.realpathSync(link);
      if (real !== link && !bound.some((b) => under(real, b)) && fs.statSync(real).isFile()) extraReadOnly.push(real);
    } catch {
      // no such file, or a dangling link: the task does without
    }
  }
  return { system, masked, extraReadOnly };
}
