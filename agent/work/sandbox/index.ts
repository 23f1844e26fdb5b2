/**
 * The host-mode task sandbox (docs/sandbox.md): whether this node can run one, and running a task's command
 * in it. With the sandbox on, every command a task runs goes through bubblewrap (bwrap.ts); when bwrap exits
 * its PID namespace dies, which takes every process the task started with it, daemons included. With the
 * operator's `SAM_TASK_SANDBOX=off` a command runs as before, as the agent's user, and its leftovers are
 * found and killed by their marker (reap.ts).
 */
import { nodeFs } from "../../runtime/lazy-node-modules.ts";
import type { SandboxConfig } from "./config.ts";
import { bwrapArgv } from "./bwrap.ts";
import { readHostLayout } from "./layout.ts";
import { chownTree } from "./ownership.ts";
import { reapTask } from "./reap.ts";
import type { SandboxStatus } from "./probe.ts";
import { type GroupOptions, type GroupRun, runInGroup } from "../process-group.ts";

export { SANDBOX_DEFAULTS, type SandboxConfig, sandboxConfigFromEnv } from "./config.ts";
export { reapTask } from "./reap.ts";
export {
  isRoot,
  probeSandbox,
  type SandboxCapability,
  sandboxCapability,
  type SandboxStatus,
  type SandboxTools,
} from "./probe.ts";

/** One task's sandbox: where its workspace is, and what must never show inside it. */
export type TaskSandbox = {
  taskId: string;
  /** The workspace on the host (bound at /workspace inside). */
  workspace: string;
  config: SandboxConfig;
  status: SandboxStatus;
  /** The agent's token file and data dir: masked too, should they sit inside a bound system tree. */
  secrets: string[];
};

/** Run `sh -c command` for the task: in bubblewrap, or — sandbox off — as is, reaping its leftovers after. */
export async function runSandboxed(
  sb: TaskSandbox,
  command: string,
  opts: Omit<GroupOptions, "cwd">,
): Promise<GroupRun> {
  const { status } = sb;
  if (status.state === "unavailable") throw new Error(status.message);
  if (status.state === "off") {
    try {
      return await runInGroup(["sh", "-c", command], { ...opts, cwd: sb.workspace });
    } finally {
      reapTask(sb.taskId, sb.workspace);
    }
  }
  if (status.tools.setpriv) chownTree(sb.workspace, sb.config.uid, sb.config.gid);
  const layout = readHostLayout(sb.secrets);
  // The operator's tool dirs, unless one would reveal what the sandbox hides (the agent's data dir, its tokens).
  const hidden = (p: string) => sb.secrets.some((s) => s === p || s.startsWith(`${p}/`) || p.startsWith(`${s}/`));
  for (const p of sb.config.toolPaths) if (nodeFs().existsSync(p) && !hidden(p)) layout.extraReadOnly.push(p);
  const argv = bwrapArgv({
    ...status.tools,
    uid: sb.config.uid,
    gid: sb.config.gid,
    workspace: sb.workspace,
    layout,
    limits: sb.config.limits,
    argv: ["sh", "-c", command],
  });
  return runInGroup(argv, { ...opts, cwd: sb.workspace });
}

/** After the task's last command: the workspace back to the agent's user, for its git and its cleanup. */
export async function reclaimWorkspace(sb: TaskSandbox): Promise<void> {
  if (sb.status.state !== "ready" || !sb.status.tools.setpriv) return;
  chownTree(sb.workspace, process.getuid!(), process.getgid!());
}
