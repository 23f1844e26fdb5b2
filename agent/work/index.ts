/**
 * The work side of the agent: workspaces and coding-agent sessions (issue: running the work).
 * The agent's server hands `/tasks` to the executor; the ready callback reports `workCapabilities`.
 * The executor itself (`executor.ts` and all it imports: the task schemas, the built-in agent, git) is
 * loaded on first use, not at start (to keep an idle agent small; docs/agent.md § Memory).
 */
import type { Env } from "../../shared/env.ts";
import type { AgentCapabilities } from "../../shared/wire/agent.ts";
import type { TaskExecutor } from "../contracts.ts";
import type { WorkConfig } from "./config.ts";
import type { TaskExecutorDeps } from "./executor.ts";
import { availableModes, chooseMode, devcontainerCliPending } from "./workspace.ts";
import { sandboxConfigFromEnv } from "./sandbox/config.ts";
import { probeSandbox, sandboxCapability } from "./sandbox/probe.ts";

export { WORK_DEFAULTS, type WorkConfig, workConfigFromEnv } from "./config.ts";
export type { TaskExecutorDeps } from "./executor.ts";

/** The work-related part of the ready callback's capabilities; the mode a task gets is listed first. */
export function workCapabilities(
  config: Pick<WorkConfig, "workspaceMode" | "maxConcurrentTasks" | "devcontainerCliPending">,
  env: Env,
): Pick<AgentCapabilities, "workspaceModes" | "agents" | "maxConcurrentTasks" | "sandbox"> {
  const pending = devcontainerCliPending(config.devcontainerCliPending);
  const modes = config.workspaceMode === "auto"
    ? availableModes(env.PATH, pending)
    : [chooseMode(config.workspaceMode, env.PATH, pending)];
  // The env was validated at start (main.ts), so this parse cannot fail here.
  const sandbox = sandboxCapability(probeSandbox(sandboxConfigFromEnv(env), env.PATH));
  return {
    workspaceModes: modes,
    agents: ["builtin", "command"],
    maxConcurrentTasks: config.maxConcurrentTasks,
    sandbox,
  };
}

/**
 * The task executor, loaded with a dynamic `import()` on the first dispatch. A static import would
 * evaluate `executor.ts` and everything under it at start: building their ≈ 80 valibot schemas is what wakes
 * JavaScriptCore's DFG tier during start, which pages in ≈ 2.5 MiB of JIT compiler code for the node's
 * whole life (docs/benchmarks.md § The VM agent). Until then the node has no task: status is
 * unknown, nothing is active, there is nothing to cancel or shut down.
 *
 * A data dir that already has the executor's database (`work.db`, see outbox.ts) may hold runs to recover
 * (lost, undelivered, not cleaned up): then the executor is created at once, as it always was, and a
 * failure to open it still stops the start.
 */
export async function loadTaskExecutor(deps: TaskExecutorDeps): Promise<TaskExecutor> {
  const create = async () => {
    // The binary starts with JavaScriptCore's tier-up thresholds scaled up (scripts/build-agent.ts,
    // `--compile-jit-policy`) so run-once start-up code is never JIT-compiled; with work, the JIT's normal
    // policy is back for the node's hot paths (event ingest, task output).
    Bun.unsafe.setJITPolicy(1);
    return (await import("./executor.ts")).createTaskExecutor(deps);
  };
  if (await Bun.file(`${deps.config.dataDir}/work.db`).exists()) return create();
  let loaded: TaskExecutor | null = null;
  let loading: Promise<TaskExecutor> | null = null;
  const load = () =>
    loading ??= create().then(
      (executor) => (loaded = executor),
      (err) => {
        loading = null; // the next dispatch tries again
        throw err;
      },
    );
  return {
    start: async (dispatch) => (await load()).start(dispatch),
    status: (taskId) => loaded?.status(taskId) ?? null,
    cancel: async (taskId) => (loading ? (await loading).cancel(taskId) : false),
    activeTaskIds: () => loaded?.activeTaskIds() ?? [],
    shutdown: async () => {
      if (loading) await (await loading).shutdown();
    },
  };
}
