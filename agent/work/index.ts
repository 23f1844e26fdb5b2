/**
 * The work side of the agent: workspaces and coding-agent sessions (issue: running the work).
 * The agent's server hands `/tasks` to the executor; the ready callback reports `workCapabilities`.
 */
import type { Env } from "../../shared/env.ts";
import type { AgentCapabilities } from "../../shared/wire/agent.ts";
import type { WorkConfig } from "./config.ts";
import { availableModes, chooseMode } from "./workspace.ts";

export { createTaskExecutor, RESTART_REASON, type TaskExecutorDeps } from "./executor.ts";
export { WORK_DEFAULTS, workConfigFromEnv, type WorkConfig } from "./config.ts";

/** The work-related part of the ready callback's capabilities; the mode a task gets is listed first. */
export function workCapabilities(config: Pick<WorkConfig, "workspaceMode" | "maxConcurrentTasks">, env: Env): Pick<AgentCapabilities, "workspaceModes" | "agents" | "maxConcurrentTasks"> {
  const modes = config.workspaceMode === "auto" ? availableModes(env.PATH) : [chooseMode(config.workspaceMode, env.PATH)];
  return { workspaceModes: modes, agents: ["builtin", "command"], maxConcurrentTasks: config.maxConcurrentTasks };
}
