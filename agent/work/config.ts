/**
 * Settings of the work side of the agent (workspaces, coding agents, delivery), read from the agent's
 * environment. Names follow docs/protocol.md § Agent configuration; the ones only this part uses are
 * documented in docs/work.md.
 */
import { type Env, envChoice, envDuration, envFlag, envInt, envString } from "../../shared/env.ts";
import { REQUEST_TIMEOUTS, TIMER_BASES } from "../../shared/timeouts.ts";
import { TASK_SLOTS, taskSlotsFromEnv } from "../../shared/wire/agent.ts";
import { SANDBOX_DEFAULTS, type SandboxConfig, sandboxConfigFromEnv } from "./sandbox/config.ts";

export type WorkspaceModeSetting = "auto" | "host" | "devcontainer";

export type WorkConfig = {
  /** The agent's data dir; workspaces live in `workspaces/`, the durable outbox in `work.db`. */
  dataDir: string;
  workspaceMode: WorkspaceModeSetting;
  maxConcurrentTasks: number;
  /** Keep a failed task's workspace (and container) for inspection instead of deleting it. */
  keepOnFailure: boolean;
  /** Image for a devcontainer when the repo has no devcontainer.json. */
  baseImage: string;
  /** A file that exists while the boot still installs the devcontainer CLI (null: no such install). */
  devcontainerCliPending: string | null;
  /** Default model of the built-in agent when the task names none. */
  defaultModel: string;
  /** Built-in agent: model round trips before it gives up. */
  maxSteps: number;
  /** Built-in agent: one `run_command` call's limit. */
  commandTimeoutMs: number;
  /** Cap of the patch in the result (bytes of UTF-8 text). */
  patchMaxBytes: number;
  /** Grace between SIGTERM and SIGKILL when a task is cancelled or times out. */
  killGraceMs: number;
  /** Who SAM's delivery commits are by (author) and who made them (committer). */
  gitAuthor: { name: string; email: string };
  gitCommitter: { name: string; email: string };
  /** Hand the repo credential to the task's own processes too (off: only SAM's clone and push see it). */
  exposeRepoCredential: boolean;
  /** First backoff of a delivery retry (doubles per attempt), and the limit of one forge API call. */
  retryBackoffMs: number;
  forgeRequestTimeoutMs: number;
  /** The host-mode task sandbox (docs/sandbox.md). */
  sandbox: SandboxConfig;
};

export const WORK_DEFAULTS: Omit<WorkConfig, "dataDir"> = {
  workspaceMode: "auto",
  maxConcurrentTasks: TASK_SLOTS.default,
  keepOnFailure: false,
  baseImage: "mcr.microsoft.com/devcontainers/base:ubuntu",
  devcontainerCliPending: null,
  defaultModel: "@cf/qwen/qwen3-30b-a3b-fp8",
  maxSteps: 30,
  commandTimeoutMs: 120_000,
  patchMaxBytes: 1_000_000,
  killGraceMs: 3_000,
  gitAuthor: { name: "SAM", email: "sam@localhost" },
  gitCommitter: { name: "SAM", email: "sam@localhost" },
  exposeRepoCredential: false,
  retryBackoffMs: TIMER_BASES.retryBackoff.default,
  forgeRequestTimeoutMs: REQUEST_TIMEOUTS.forgeRequest.ms,
  sandbox: SANDBOX_DEFAULTS,
};

export function workConfigFromEnv(env: Env, dataDir: string): WorkConfig {
  const gitAuthor = {
    name: envString(env, "SAM_GIT_AUTHOR_NAME", WORK_DEFAULTS.gitAuthor.name),
    email: envString(env, "SAM_GIT_AUTHOR_EMAIL", WORK_DEFAULTS.gitAuthor.email),
  };
  return {
    dataDir,
    workspaceMode: envChoice(
      env,
      "SAM_WORKSPACE_MODE",
      ["auto", "host", "devcontainer"] as const,
      WORK_DEFAULTS.workspaceMode,
    ),
    maxConcurrentTasks: taskSlotsFromEnv(env),
    keepOnFailure: envFlag(env, "SAM_KEEP_FAILED_WORKSPACES", WORK_DEFAULTS.keepOnFailure),
    baseImage: envString(env, "SAM_DEVCONTAINER_IMAGE", WORK_DEFAULTS.baseImage),
    devcontainerCliPending: envString(env, "SAM_DEVCONTAINER_CLI_PENDING") ?? WORK_DEFAULTS.devcontainerCliPending,
    defaultModel: envString(env, "SAM_AGENT_MODEL", WORK_DEFAULTS.defaultModel),
    maxSteps: envInt(env, "SAM_AGENT_MAX_STEPS", WORK_DEFAULTS.maxSteps, 1, 1000),
    commandTimeoutMs: envDuration(env, "SAM_AGENT_COMMAND_TIMEOUT", WORK_DEFAULTS.commandTimeoutMs),
    patchMaxBytes: envInt(env, "SAM_PATCH_MAX_BYTES", WORK_DEFAULTS.patchMaxBytes, 1024, 1_048_576),
    killGraceMs: envDuration(env, "SAM_KILL_GRACE", WORK_DEFAULTS.killGraceMs),
    gitAuthor,
    gitCommitter: {
      name: envString(env, "SAM_GIT_COMMITTER_NAME", gitAuthor.name),
      email: envString(env, "SAM_GIT_COMMITTER_EMAIL", gitAuthor.email),
    },
    exposeRepoCredential: envFlag(env, "SAM_TASK_SEES_REPO_CREDENTIAL", WORK_DEFAULTS.exposeRepoCredential),
    retryBackoffMs: envDuration(env, TIMER_BASES.retryBackoff.env, WORK_DEFAULTS.retryBackoffMs),
    forgeRequestTimeoutMs: WORK_DEFAULTS.forgeRequestTimeoutMs,
    sandbox: sandboxConfigFromEnv(env),
  };
}
