/**
 * Whether this node can sandbox host-mode tasks: bwrap, and util-linux's prlimit (and setpriv, when the agent
 * is root and so has an unprivileged uid to switch to). Kept apart from the rest of the sandbox: the ready
 * callback runs it at start, where the idle agent must not load what only tasks need.
 */
import type { SandboxConfig } from "./config.ts";

export type SandboxTools = { bwrap: string; prlimit: string; setpriv: string | null };

export type SandboxStatus =
  | { state: "ready"; tools: SandboxTools }
  | { state: "off" }
  | { state: "unavailable"; message: string };

/** What the ready callback reports: `bubblewrap`, `off` (operator's choice) or `unavailable` (host mode refused). */
export type SandboxCapability = "bubblewrap" | "off" | "unavailable";

const PACKAGE_OF: Record<string, string> = { bwrap: "bubblewrap", prlimit: "util-linux", setpriv: "util-linux" };

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Find bwrap (and prlimit, and setpriv when root) on PATH. Bun's lookup: this also runs at start. */
export function probeSandbox(
  config: Pick<SandboxConfig, "mode">,
  path: string | undefined,
  root = isRoot(),
): SandboxStatus {
  if (config.mode === "off") return { state: "off" };
  const which = (name: string) => (path ? Bun.which(name, { PATH: path }) : null);
  const found = { bwrap: which("bwrap"), prlimit: which("prlimit"), setpriv: root ? which("setpriv") : null };
  const needed: (keyof typeof found)[] = root ? ["bwrap", "prlimit", "setpriv"] : ["bwrap", "prlimit"];
  const missing = needed.filter((n) => !found[n]);
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((n) => PACKAGE_OF[n]!))];
    return {
      state: "unavailable",
      message: `host-mode tasks run in a bubblewrap sandbox, and this node lacks ${
        missing.map((n) => `'${n}'`).join(", ")
      }: ` +
        `install the Debian/Ubuntu package${pkgs.length > 1 ? "s" : ""} ${
          pkgs.map((p) =>
            `'${p}'`
          ).join(", ")
        } on the node, ` +
        "or set SAM_TASK_SANDBOX=off to run tasks without a sandbox (unsafe: a task can then read the node's tokens)",
    };
  }
  return { state: "ready", tools: { bwrap: found.bwrap!, prlimit: found.prlimit!, setpriv: found.setpriv } };
}

export function sandboxCapability(status: SandboxStatus): SandboxCapability {
  return status.state === "ready" ? "bubblewrap" : status.state;
}
