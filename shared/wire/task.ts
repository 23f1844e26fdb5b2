/** Tasks as users submit and read them (`/api/tasks`), and as the edge hands them to an agent. */
import * as v from "valibot";
import { TASK_DISPATCH_BATCH } from "./agent.ts";
import { EpochMs, Id, Labels, NonNegativeInt } from "./common.ts";

export const TASK_STATUSES = [
  "queued",
  "provisioning",
  "waiting_for_agent",
  "dispatched",
  "running",
  "succeeded",
  "failed",
  "cancelled",
] as const;
export const TaskStatus = v.picklist(TASK_STATUSES);
export type TaskStatus = v.InferOutput<typeof TaskStatus>;
export const TERMINAL_STATUSES: readonly TaskStatus[] = ["succeeded", "failed", "cancelled"];
export const isTerminal = (s: TaskStatus) => TERMINAL_STATUSES.includes(s);

/** A git remote: https/http/ssh/git URLs, scp-style `git@host:path`, or a local path/file URL (local nodes). */
export const RepoUrl = v.pipe(
  v.string(),
  v.maxLength(2048),
  v.regex(
    /^(?:(?:https?|ssh|git|file):\/\/[^\s]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+|\/[^\s]*)$/,
    "repo.url must be an http(s), ssh, git or file URL, user@host:path, or an absolute path",
  ),
  v.check((s) => !s.startsWith("-"), "repo.url must not start with '-'"),
  v.check(
    (s) => !secretInUserinfo(s),
    "repo.url must not carry a user name or password (it would be stored and shown with the task); send the token or password in repo.credential",
  ),
);

/** The `user[:password]@` part of a URL's authority, or null (scp-style `git@host:path` has none). */
function userinfoOf(url: string): string | null {
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)@/.exec(url);
  return m ? m[1]! : null;
}

/**
 * Whether a repo URL carries a secret before its host: any userinfo on http(s), git and file URLs (a token
 * is often sent as the user name), a password on ssh URLs (`ssh://git@host/…` names an account, not a secret).
 */
function secretInUserinfo(url: string): boolean {
  const info = userinfoOf(url);
  if (info === null) return false;
  return url.toLowerCase().startsWith("ssh:") ? info.includes(":") : true;
}

/** A repo URL for display: any userinfo an older edge accepted is masked. */
export function displayRepoUrl(url: string): string {
  return !secretInUserinfo(url) ? url : url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#]*@/, "$1***@");
}
export const GitRef = v.pipe(
  v.string(),
  v.regex(/^(?!-)(?!.*\.\.)[A-Za-z0-9._\/-]{1,200}$/, "repo.branch must be a plain git ref name"),
);

/** A branch SAM may create: a plain ref name that git itself would accept as a new branch. */
export const PushBranch = v.pipe(
  v.string(),
  v.regex(
    /^(?!-)(?!.*\.\.)(?!.*\/\/)(?!.*\/$)(?!.*\.lock$)(?!.*@\{)[A-Za-z0-9._\/-]{1,200}$/,
    "repo.push.branch must be a plain git branch name",
  ),
  v.check((s) => s !== "HEAD", "repo.push.branch must not be HEAD"),
);

/** Which REST API opens the pull request; Forgejo speaks Gitea's API. */
export const FORGES = ["github", "gitea", "forgejo"] as const;
export const Forge = v.picklist(FORGES, "forge must be github, gitea or forgejo");

export const PullRequestRequest = v.strictObject({
  title: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(256))),
  body: v.optional(v.pipe(v.string(), v.maxLength(65_536))),
  /** The branch the pull request merges into; default: the branch that was cloned (else the remote's default). */
  base: v.optional(GitRef),
  draft: v.optional(v.boolean()),
  /** Default: from the remote URL's host (github.com → github; codeberg.org, gitea.*, forgejo.* → gitea). */
  forge: v.optional(Forge),
  /** The forge's REST API root, e.g. `https://ghe.example.com/api/v3` or `https://git.example.com/api/v1`. */
  apiBase: v.optional(
    v.pipe(v.string(), v.maxLength(2048), v.url(), v.regex(/^https?:\/\//, "apiBase must be an http(s) URL")),
  ),
});
export type PullRequestRequest = v.InferOutput<typeof PullRequestRequest>;

/** Hand the work back as a new branch (and, when asked, a pull request) once the task's agent succeeds. */
export const RepoPush = v.strictObject({
  /** Default `sam/<task id>`. Must not exist yet on the remote and must not be its default branch. */
  branch: v.optional(PushBranch),
  commitMessage: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(16_384))),
  pullRequest: v.optional(PullRequestRequest),
});
export type RepoPush = v.InferOutput<typeof RepoPush>;

export const TaskRepo = v.pipe(
  v.strictObject({
    url: RepoUrl,
    branch: v.optional(GitRef),
    /** A token for the clone and the push (e.g. a GitHub PAT). Stored for dispatch only; never echoed back or logged. */
    credential: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(4096))),
    push: v.optional(RepoPush),
  }),
  v.check(
    (r) => !r.push?.pullRequest || r.credential !== undefined,
    "repo.push.pullRequest needs repo.credential (a token the forge's API accepts)",
  ),
);
export type TaskRepo = v.InferOutput<typeof TaskRepo>;

export const TaskAgent = v.variant("type", [
  v.strictObject({ type: v.literal("builtin") }),
  v.strictObject({
    type: v.literal("command"),
    command: v.pipe(v.string(), v.minLength(1), v.maxLength(16_384)),
  }),
]);
export type TaskAgent = v.InferOutput<typeof TaskAgent>;

export const ModelName = v.pipe(
  v.string(),
  v.minLength(1),
  v.maxLength(200),
  v.regex(/^[\w@./:-]+$/, "model must be a model id such as @cf/qwen/qwen3-30b-a3b-fp8"),
);

/** `POST /api/tasks` body. Unknown fields are refused so typos are not silently ignored. */
export const TaskSubmission = v.strictObject({
  prompt: v.pipe(v.string(), v.minLength(1, "prompt must not be empty"), v.maxLength(100_000)),
  repo: v.optional(TaskRepo),
  agent: v.optional(TaskAgent, { type: "builtin" }),
  model: v.optional(ModelName),
  labels: v.optional(Labels, {}),
});
export type TaskSubmission = v.InferOutput<typeof TaskSubmission>;

export const TaskStep = v.object({
  name: v.string(),
  startedAt: EpochMs,
  endedAt: EpochMs,
  durationMs: NonNegativeInt,
});
export type TaskStep = v.InferOutput<typeof TaskStep>;

/**
 * What became of the work in the repository. `delivered`: the branch was pushed (and the pull request opened
 * or found); `failed`: not (fully) delivered, `reason` says why and the patch stays in the result; `skipped`:
 * nothing to deliver (no change).
 */
export const DELIVERY_FAILURES = [
  "auth",
  "branch_exists",
  "default_branch",
  "protected_branch",
  "push_failed",
  "forge_unknown",
  "pull_request_failed",
  "timeout",
  "cancelled",
] as const;
export const TaskDelivery = v.object({
  status: v.picklist(["delivered", "failed", "skipped"]),
  branch: v.optional(v.string()),
  /** A web page of the branch, when the forge is known. */
  branchUrl: v.optional(v.string()),
  commit: v.optional(v.pipe(v.string(), v.regex(/^[0-9a-f]{40,64}$/))),
  pullRequest: v.optional(v.object({
    number: NonNegativeInt,
    url: v.string(),
    /** The pull request was there already (same head and base); SAM reports it instead of opening another. */
    existing: v.boolean(),
  })),
  code: v.optional(v.picklist(DELIVERY_FAILURES)),
  reason: v.optional(v.pipe(v.string(), v.maxLength(4096))),
});
export type TaskDelivery = v.InferOutput<typeof TaskDelivery>;

/** What the agent reports when a task ends (`POST /api/agent/tasks/:id/result`). */
export const TaskResult = v.object({
  status: v.picklist(["succeeded", "failed", "cancelled"]),
  exitCode: v.nullable(v.pipe(v.number(), v.integer())),
  summary: v.optional(v.pipe(v.string(), v.maxLength(65_536))),
  error: v.optional(v.pipe(v.string(), v.maxLength(65_536))),
  diffStat: v.optional(v.pipe(v.string(), v.maxLength(65_536))),
  patch: v.optional(v.pipe(v.string(), v.maxLength(1_048_576))),
  patchTruncated: v.optional(v.boolean()),
  steps: v.optional(v.array(TaskStep), []),
  delivery: v.optional(TaskDelivery),
  finishedAt: EpochMs,
});
export type TaskResult = v.InferOutput<typeof TaskResult>;

/** Agent → edge: a run's state, the body of the agent's 202 to a dispatch and of `GET /tasks/:id`. */
export const TaskRunState = v.object({
  taskId: Id,
  status: v.picklist(["running", "succeeded", "failed", "cancelled"]),
  startedAt: EpochMs,
  finishedAt: v.nullable(EpochMs),
  exitCode: v.nullable(v.pipe(v.number(), v.integer())),
});
export type TaskRunState = v.InferOutput<typeof TaskRunState>;

/** Edge → agent: `POST /tasks` on the node. */
export const TaskDispatch = v.object({
  taskId: Id,
  prompt: v.string(),
  repo: v.optional(TaskRepo),
  agent: TaskAgent,
  model: v.optional(ModelName),
  /** The edge's `/v1` base URL and the task inference token (scoped to this task). */
  inference: v.object({ baseUrl: v.pipe(v.string(), v.url()), token: v.string() }),
  timeoutMs: v.pipe(v.number(), v.integer(), v.minValue(1)),
});
export type TaskDispatch = v.InferOutput<typeof TaskDispatch>;

/**
 * Edge → agent: `POST /tasks/batch`, the dispatches of a burst to one node in one call (agents whose ready
 * callback reports `batchDispatch`). Each task is taken or refused on its own, in order, exactly as `POST /tasks`
 * would: its answer is the status and body that call would have had. A task that is not a valid dispatch is
 * that task's 400, not the batch's.
 */
export const TaskDispatchBatch = v.object({
  tasks: v.pipe(v.array(v.unknown()), v.minLength(1), v.maxLength(TASK_DISPATCH_BATCH.maxTasks)),
});
export type TaskDispatchBatch = { tasks: TaskDispatch[] };
export const TaskDispatchBatchAnswer = v.object({
  results: v.array(v.object({ status: v.pipe(v.number(), v.integer()), body: v.unknown() })),
});
export type TaskDispatchBatchAnswer = v.InferOutput<typeof TaskDispatchBatchAnswer>;

/** One line of a task's log as it travels agent → edge → user. `seq` orders and de-duplicates. */
export const TaskLogEvent = v.object({
  seq: NonNegativeInt,
  at: EpochMs,
  stream: v.picklist(["stdout", "stderr", "system"]),
  message: v.pipe(v.string(), v.maxLength(65_536)),
});
export type TaskLogEvent = v.InferOutput<typeof TaskLogEvent>;

export const TaskLogBatch = v.object({
  events: v.pipe(v.array(TaskLogEvent), v.minLength(1), v.maxLength(1000)),
});
export type TaskLogBatch = v.InferOutput<typeof TaskLogBatch>;
