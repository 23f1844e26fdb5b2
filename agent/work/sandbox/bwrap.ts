/**
 * The bubblewrap command line of one sandboxed command (docs/sandbox.md): a fresh PID and IPC namespace that
 * dies with the agent, the system directories read-only with the node's secrets masked, its own /proc, /dev
 * and /tmp, the workspace as the only writable host directory, then rlimits and — when the agent is root — a
 * real switch to an unprivileged uid. A user-namespace uid mapping would not do: the kernel checks file access
 * against the outside uid, so secrets are hidden by not binding them and the uid drop is real.
 *
 * Pure: what exists on the host comes in as a `HostLayout` (layout.ts), so the argv is unit-tested as data.
 */
import type { SandboxLimits } from "./config.ts";

/** Where the workspace appears inside the sandbox; a task's cwd. */
export const SANDBOX_WORKSPACE = "/workspace";

/** Read-only system trees a task may use (its shell, git, compilers, CA certificates). */
export const SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"] as const;

/** Paths under the system trees that hold a node's secrets; masked whether or not the task uid could read them. */
export const SECRET_PATHS = [
  "/etc/sam",
  "/etc/ssh",
  "/etc/shadow",
  "/etc/shadow-",
  "/etc/gshadow",
  "/etc/gshadow-",
  "/etc/ssl/private",
  "/etc/sudoers",
  "/etc/sudoers.d",
  "/etc/docker",
  "/etc/cloud",
] as const;

export type HostEntry = { path: string; kind: "dir" } | { path: string; kind: "symlink"; target: string };

export type HostLayout = {
  /** The system trees that exist on this host, as directories or as symlinks (merged /usr). */
  system: HostEntry[];
  /** Secret paths (and the agent's own token file and data dir) found inside a system tree. */
  masked: { path: string; kind: "dir" | "file" }[];
  /** Files a symlink in /etc leads to outside the bound trees (resolv.conf → /run/systemd/resolve/…). */
  extraReadOnly: string[];
};

export type SandboxCommand = {
  bwrap: string;
  prlimit: string;
  /** `setpriv` to switch to `uid`/`gid`; null when the agent is not root (then there is no other uid to take). */
  setpriv: string | null;
  uid: number;
  gid: number;
  workspace: string;
  layout: HostLayout;
  limits: SandboxLimits;
  argv: string[];
};

/** `prlimit` arguments: soft and hard limit alike, so the task cannot raise them back. */
export function rlimitArgs(limits: SandboxLimits): string[] {
  const both = (n: number | null) => (n === null ? "unlimited:unlimited" : `${n}:${n}`);
  return [
    `--nproc=${both(limits.processes)}`,
    `--nofile=${both(limits.openFiles)}`,
    `--as=${both(limits.memoryBytes)}`,
    `--cpu=${both(limits.cpuSeconds)}`,
    "--core=0:0",
  ];
}

export function bwrapArgv(c: SandboxCommand): string[] {
  const argv = [c.bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-cgroup-try", "--die-with-parent"];
  for (const e of c.layout.system) {
    if (e.kind === "symlink") argv.push("--symlink", e.target, e.path);
    else argv.push("--ro-bind", e.path, e.path);
  }
  for (const m of c.layout.masked) {
    if (m.kind === "dir") argv.push("--tmpfs", m.path);
    else argv.push("--ro-bind", "/dev/null", m.path);
  }
  argv.push("--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp");
  // After the private /tmp, so an extra dir under /tmp is not hidden by it (later mounts lie on top).
  // bwrap makes the missing parents of a bind 0700 (root's), which the task's uid could not traverse.
  const made = new Set([...c.layout.system.map((e) => e.path), "/tmp"]);
  for (const p of c.layout.extraReadOnly) {
    const parts = p.split("/").filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const parent = `/${parts.slice(0, i).join("/")}`;
      if (made.has(parent) || c.layout.system.some((e) => parent.startsWith(`${e.path}/`))) continue;
      made.add(parent);
      argv.push("--perms", "0755", "--dir", parent);
    }
    argv.push("--ro-bind", p, p);
  }
  argv.push(
    "--bind",
    c.workspace,
    SANDBOX_WORKSPACE,
    "--chdir",
    SANDBOX_WORKSPACE,
    "--setenv",
    "HOME",
    "/tmp",
    "--setenv",
    "TMPDIR",
    "/tmp",
    "--setenv",
    "PWD",
    SANDBOX_WORKSPACE,
    "--",
    c.prlimit,
    ...rlimitArgs(c.limits),
    "--",
  );
  if (c.setpriv) {
    argv.push(
      c.setpriv,
      `--reuid=${c.uid}`,
      `--regid=${c.gid}`,
      "--clear-groups",
      "--inh-caps=-all",
      "--bounding-set=-all",
      "--no-new-privs",
      "--",
    );
  }
  argv.push(...c.argv);
  return argv;
}
