/**
 * Hand a succeeded task's work back where it belongs: one commit on a new branch of the task's repository and,
 * when asked, a pull request. Every step is logged to the task's stream (so SSE followers watch it happen) and
 * timed as a result step; whatever fails, the outcome is a `TaskDelivery` saying what was done and why not —
 * the task stays succeeded and its patch stays in the result.
 */
import type { TaskDelivery, TaskRepo } from "../../../shared/wire/task.ts";
import type { WorkConfig } from "../config.ts";
import { splitCredential } from "../git.ts";
import { branchWebUrl, forgeTarget } from "./forge.ts";
import { openPullRequest } from "./pull-request.ts";
import { commitWork, prepareSender, type PushAttempt, pushBranch } from "./push.ts";
import { withRetries } from "./retry.ts";

export type HandOffInput = {
  taskId: string;
  prompt: string;
  repo: TaskRepo & { push: NonNullable<TaskRepo["push"]> };
  dir: string;
  metaDir: string;
  /** The cloned commit. */
  base: string;
  /** The agent's scrubbed environment (PATH, HOME…); the credential is added only for SAM's own git. */
  env: Record<string, string>;
  config: Pick<WorkConfig, "gitAuthor" | "gitCommitter" | "retryBackoffMs" | "forgeRequestTimeoutMs">;
  /** Epoch ms: the task's run deadline; no retry outlives it. */
  deadlineAt: number;
  signal?: AbortSignal;
  log: (message: string) => void;
  step: <T>(name: string, fn: () => Promise<T>) => Promise<T>;
};

export const defaultBranchName = (taskId: string) => `sam/${taskId}`;

function firstLine(prompt: string): string {
  const line = prompt.trim().split("\n")[0]!.trim();
  return line.length > 72 ? `${line.slice(0, 69)}…` : line;
}

/** When the run was stopped mid-delivery: by its deadline, or by a cancel. */
function stopCode(i: Pick<HandOffInput, "signal" | "deadlineAt">): "timeout" | "cancelled" | null {
  if (!i.signal?.aborted) return null;
  return Date.now() >= i.deadlineAt - 1_000 ? "timeout" : "cancelled";
}

export async function handOff(i: HandOffInput): Promise<TaskDelivery> {
  const push = i.repo.push;
  const branch = push.branch ?? defaultBranchName(i.taskId);
  const failed = (
    code: NonNullable<TaskDelivery["code"]>,
    reason: string,
    done: Partial<TaskDelivery> = {},
  ): TaskDelivery => {
    i.log(`delivery: not delivered — ${reason}`);
    // The wire caps the reason; an edge refuses a whole result over one long field.
    return {
      branch,
      ...done,
      status: "failed",
      code,
      reason: reason.length > 4000 ? `${reason.slice(0, 3990)} [… cut]` : reason,
    };
  };
  // Resolve the forge first: a pull request that cannot be opened should not leave a branch behind unexplained.
  const target = forgeTarget(i.repo.url, push.pullRequest ?? {});
  if (push.pullRequest && "error" in target) return failed("forge_unknown", target.error);
  const forge = "error" in target ? null : target;

  let commit: string | null;
  try {
    commit = await i.step("commit", () =>
      commitWork({
        dir: i.dir,
        metaDir: i.metaDir,
        env: i.env,
        base: i.base,
        taskId: i.taskId,
        message: push.commitMessage ?? firstLine(i.prompt),
        author: i.config.gitAuthor,
        committer: i.config.gitCommitter,
      }));
  } catch (err) {
    return failed("push_failed", `could not commit the change: ${(err as Error).message}`);
  }
  if (!commit) {
    i.log("delivery: no changes — nothing pushed");
    return { status: "skipped", reason: "no changes: nothing was pushed" };
  }
  i.log(`delivery: committed ${commit.slice(0, 12)} by ${i.config.gitAuthor.name} <${i.config.gitAuthor.email}>`);

  let sender: string;
  try {
    sender = await prepareSender(i.dir, i.metaDir, i.env);
  } catch (err) {
    return failed("push_failed", (err as Error).message, { commit });
  }
  let lastCode: NonNullable<TaskDelivery["code"]> = "push_failed";
  const pushed = await i.step("push", () =>
    withRetries<Extract<PushAttempt, { ok: true }>>({
      deadlineAt: i.deadlineAt,
      backoffMs: i.config.retryBackoffMs,
      signal: i.signal,
      onRetry: (why, wait) => i.log(`delivery: ${why}; retrying in ${Math.ceil(wait / 1000)} s`),
    }, async () => {
      const r = await pushBranch({
        dir: i.dir,
        metaDir: i.metaDir,
        sender,
        url: i.repo.url,
        credential: i.repo.credential,
        branch,
        commit: commit!,
        env: i.env,
        signal: i.signal,
        timeoutMs: Math.max(1, i.deadlineAt - Date.now()),
        onLine: i.log,
      });
      if (r.ok) return { ok: true, value: r };
      lastCode = r.code;
      return { ok: false, transient: r.transient, reason: r.reason };
    }));
  if (!pushed.ok) {
    return failed(stopCode(i) ?? (pushed.timedOut ? "timeout" : lastCode), pushed.reason, { commit });
  }
  const branchUrl = forge ? branchWebUrl(forge, branch) : undefined;
  i.log(
    `delivery: pushed branch ${branch}${
      pushed.value.alreadyThere ? " (it was already there from an earlier try)" : ""
    }${branchUrl ? ` — ${branchUrl}` : ""}`,
  );
  const done: TaskDelivery = { status: "delivered", branch, commit, ...(branchUrl ? { branchUrl } : {}) };
  if (!push.pullRequest || !forge) return done;

  const pr = push.pullRequest;
  const base = pr.base ?? i.repo.branch ?? pushed.value.defaultBranch;
  if (!base) {
    return failed(
      "pull_request_failed",
      "the branch was pushed, but the remote names no default branch to open the pull request against; set repo.push.pullRequest.base",
      done,
    );
  }
  const token = i.repo.credential ? splitCredential(i.repo.credential).password : "";
  if (!token) {
    return failed("auth", "the branch was pushed, but a pull request needs repo.credential (an API token)", done);
  }
  i.log(`delivery: opening a pull request ${branch} → ${base} on ${forge.owner}/${forge.repo} (${forge.kind})`);
  const opened = await i.step("pull_request", () =>
    openPullRequest({
      target: forge,
      token,
      head: branch,
      base,
      title: pr.title ?? push.commitMessage?.split("\n")[0] ?? firstLine(i.prompt),
      body: pr.body ??
        `Opened by SAM for task ${i.taskId}.\n\n> ${i.prompt.trim().split("\n").join("\n> ")}`.slice(0, 65_536),
      draft: pr.draft ?? false,
      deadlineAt: i.deadlineAt,
      backoffMs: i.config.retryBackoffMs,
      requestTimeoutMs: i.config.forgeRequestTimeoutMs,
      signal: i.signal,
      log: i.log,
    }));
  if (!opened.ok) {
    const code = stopCode(i) ?? (opened.auth ? "auth" : opened.timedOut ? "timeout" : "pull_request_failed");
    return failed(code, `the branch was pushed, but the pull request was not opened: ${opened.reason}`, done);
  }
  i.log(
    `delivery: ${
      opened.existing ? "a pull request was already open" : "opened pull request"
    } #${opened.number} — ${opened.url}`,
  );
  return { ...done, pullRequest: { number: opened.number, url: opened.url, existing: opened.existing } };
}
