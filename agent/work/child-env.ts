/**
 * The environment of every process a task starts: the agent's own secrets and settings removed (node and
 * agent tokens, the token file, cloud credentials), the task's inputs added. A coding agent runs arbitrary
 * commands, so nothing it can read may let it act as the node.
 */
import type { Env } from "../../shared/env.ts";
import type { TaskDispatch } from "../../shared/wire/task.ts";
import { splitCredential } from "./git.ts";

/** Whole prefixes and names that belong to the agent, never to the work it runs. */
const SCRUBBED_PREFIXES = ["SAM_", "HCLOUD_", "CF_", "TURSO_"];
const SCRUBBED_NAMES = new Set(["OPENAI_API_KEY", "OPENAI_BASE_URL", "GIT_ASKPASS", "SSH_ASKPASS"]);

export function scrubbedEnv(base: Env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(base)) {
    if (val === undefined) continue;
    if (SCRUBBED_NAMES.has(k) || SCRUBBED_PREFIXES.some((p) => k.startsWith(p))) continue;
    out[k] = val;
  }
  return out;
}

/**
 * What a coding agent sees: the scrubbed base plus the prompt and the task's inference endpoint. The repo
 * credential only when the operator allows it (SAM_TASK_SEES_REPO_CREDENTIAL): then the task's own git finds
 * it through a credential helper given in the environment (git's GIT_CONFIG_* variables), never in a file.
 */
export function taskEnv(
  base: Env,
  dispatch: TaskDispatch,
  model: string,
  o: { exposeRepoCredential?: boolean } = {},
): Record<string, string> {
  const env: Record<string, string> = {
    ...scrubbedEnv(base),
    SAM_TASK_ID: dispatch.taskId,
    SAM_TASK_PROMPT: dispatch.prompt,
    OPENAI_BASE_URL: dispatch.inference.baseUrl,
    OPENAI_API_KEY: dispatch.inference.token,
    OPENAI_MODEL: model,
    GIT_TERMINAL_PROMPT: "0",
  };
  const credential = dispatch.repo?.credential;
  if (o.exposeRepoCredential && credential) {
    const { username, password } = splitCredential(credential);
    Object.assign(env, {
      SAM_GIT_USERNAME: username,
      SAM_GIT_PASSWORD: password,
      GIT_CONFIG_COUNT: "1",
      GIT_CONFIG_KEY_0: "credential.helper",
      GIT_CONFIG_VALUE_0:
        `!f() { test "$1" = get && printf 'username=%s\npassword=%s\n' "$SAM_GIT_USERNAME" "$SAM_GIT_PASSWORD"; }; f`,
    });
  }
  return env;
}

/** The credential variables `taskEnv` added, which a devcontainer must be handed explicitly. */
export function repoCredentialNames(env: Record<string, string>): string[] {
  return Object.keys(env).filter((k) =>
    k === "SAM_GIT_USERNAME" || k === "SAM_GIT_PASSWORD" || k.startsWith("GIT_CONFIG_")
  );
}
