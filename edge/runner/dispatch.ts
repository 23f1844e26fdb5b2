/**
 * A task on its node: the dispatch CAS and the agent call (`POST <agent>/tasks`), the move to running, the
 * agent's result, and the ways a task is stopped there — a cancel by its user, a failure by the runner.
 */
import * as v from "valibot";
import { errorMessageOf } from "../../shared/errors.ts";
import {
  isTerminal,
  type TaskDispatch,
  type TaskResult,
  TaskRunState,
  type TaskStatus,
} from "../../shared/wire/task.ts";
import { taskToken } from "../auth/authenticate.ts";
import { hashToken } from "../auth/tokens.ts";
import { AgentUnreachable } from "../nodes/agent-client.ts";
import type { NodeRecord } from "../nodes/store.ts";
import { dispatchingMessage, type TaskRecord, type TransitionGuard } from "../tasks/store.ts";
import { dispatchLease, requestTimeoutMs, type RunnerContext } from "./context.ts";
import { runnerDeadline } from "./deadlines.ts";
import { taskLeftNode } from "./placement.ts";

/**
 * The dispatch CAS, which also stores the attempt's inference token (one write batch). Returns the task as
 * the CAS left it, so the dispatch needs no re-read: what it sends (prompt, agent, repo, model) never changes.
 */
export async function claimDispatch(
  r: RunnerContext,
  task: TaskRecord,
  node: NodeRecord,
  from: TaskStatus[],
  when?: TransitionGuard,
): Promise<{ task: TaskRecord; token: string } | null> {
  const now = Date.now();
  const deadline = runnerDeadline("dispatched", now, r.t);
  const nextAttemptAt = dispatchLease(r.t, now);
  const token = taskToken(task.id);
  const ok = await r.tasks.transition(task.id, from, "dispatched", {
    message: dispatchingMessage(node.id),
    nodeId: node.id,
    deadline,
    nextAttemptAt,
    when,
    inferenceTokenHash: hashToken(token),
    now,
  });
  if (!ok) return null;
  return { task: asDispatched(task, node.id, now, deadline, nextAttemptAt), token };
}

/** The record as a dispatch CAS at `at` left it (the same columns the CAS wrote). */
export function asDispatched(
  task: TaskRecord,
  nodeId: string,
  at: number,
  deadline: { at: number; timer: string },
  nextAttemptAt: number,
): TaskRecord {
  return {
    ...task,
    status: "dispatched",
    statusAt: at,
    updatedAt: at,
    nodeId,
    deadlineAt: deadline.at,
    deadlineTimer: deadline.timer,
    nextAttemptAt,
    attempts: 0,
  };
}

/** Dispatch a task already `dispatched` (a retry of the tick): read it, mint a fresh token, send it. */
export async function postDispatch(r: RunnerContext, taskId: string, node: NodeRecord): Promise<void> {
  const task = await r.tasks.get(taskId);
  if (!task || task.status !== "dispatched") return;
  const token = taskToken(task.id);
  await r.tasks.mintInferenceToken(task.id, hashToken(token));
  await dispatch(r, task, node, token);
}

/** `POST <agent>/tasks`. 202 (or 409: it already has it) → running; 429/5xx/unreachable → retry later. */
export async function dispatch(r: RunnerContext, task: TaskRecord, node: NodeRecord, token: string): Promise<void> {
  const body: TaskDispatch = {
    taskId: task.id,
    prompt: task.prompt,
    agent: task.agent,
    inference: { baseUrl: `${r.publicUrl()}/v1`, token },
    timeoutMs: r.t.taskRun,
  };
  if (task.repo) {
    body.repo = { url: task.repo.url };
    if (task.repo.branch) body.repo.branch = task.repo.branch;
    if (task.repo.credential) body.repo.credential = await r.tasks.openCredential(task.repo.credential);
    if (task.repo.push) body.repo.push = task.repo.push;
  }
  if (task.model) body.model = task.model;
  let transient: string;
  try {
    // With the other dispatches to this node in this turn, as one call if its agent takes batches.
    const res = await r.dispatches.send(node, body, requestTimeoutMs(r.t));
    const text = res.text;
    if (res.status === 409) {
      // The agent has this task already (a retried dispatch whose first answer was lost).
      await markRunning(r, task.id, node.id);
      return;
    }
    if (res.status === 202 || res.status === 200) {
      if (acceptedRun(text, task.id)) {
        await markRunning(r, task.id, node.id);
        return;
      }
      transient = `HTTP ${res.status} with a body that is not this task's run state: ${text.slice(0, 200)}`;
    } else if (res.status !== 429 && res.status < 500) {
      const reason = `node ${node.id} refused the task: HTTP ${res.status} ${agentMessage(text)}`;
      await fail(r, task, ["dispatched"], reason);
      return;
    } else {
      transient = `HTTP ${res.status} ${agentMessage(text)}`;
    }
  } catch (err) {
    if (!(err instanceof AgentUnreachable)) throw err;
    transient = err.message;
  }
  const backoff = r.t.retryBackoff * 2 ** Math.min(task.attempts, 8);
  r.log(`dispatch of ${task.id} to ${node.id} failed (${transient}); retrying in ${backoff} ms`);
  await r.tasks.setNextAttempt(task.id, "dispatched", Date.now() + backoff);
}

/** The agent has the task: `dispatched → running`, with the run deadline from now. */
export async function markRunning(r: RunnerContext, taskId: string, nodeId: string): Promise<boolean> {
  const now = Date.now();
  const ok = await r.tasks.markRunning(taskId, {
    message: `running on node ${nodeId}`,
    deadline: runnerDeadline("running", now, r.t),
    now,
  });
  if (ok) r.wakeups.notify(taskId);
  return ok;
}

/** The agent's result: the task ends as the agent says, and its slot goes to the next task. */
export async function taskFinished(r: RunnerContext, task: TaskRecord, result: TaskResult): Promise<boolean> {
  const error = result.status === "succeeded"
    ? null
    : (result.error ?? `the task ${result.status} with exit code ${result.exitCode}`);
  const ok = await r.tasks.transition(task.id, ["dispatched", "running"], result.status, {
    message: result.status === "succeeded" ? succeededMessage(result) : error!,
    error,
    result,
  });
  r.wakeups.notify(task.id);
  if (ok) r.background(() => taskLeftNode(r, task));
  return ok;
}

/**
 * Cancel: a task not yet on a node stops at once; one on a node is marked and the agent is told. When the
 * runner moved the task meanwhile (the CAS lost), the cancel applies to wherever it is now. False when the
 * task ended first (or is gone).
 */
export async function cancel(r: RunnerContext, task: TaskRecord): Promise<boolean> {
  for (let current: TaskRecord | null = task; current && !isTerminal(current.status);) {
    if (await cancelFrom(r, current)) return true;
    current = await r.tasks.get(task.id);
  }
  return false;
}

async function cancelFrom(r: RunnerContext, task: TaskRecord): Promise<boolean> {
  const onNode = task.status === "dispatched" || task.status === "running";
  if (onNode) await r.tasks.requestCancel(task.id);
  const ok = await r.tasks.transition(task.id, [task.status], "cancelled", {
    message: "cancelled by the user",
    error: "cancelled by the user",
  });
  if (!ok) return false;
  r.wakeups.notify(task.id);
  if (onNode && task.nodeId) r.background(() => cancelOnNode(r, task.id, task.nodeId!));
  r.background(() => taskLeftNode(r, task));
  return true;
}

async function cancelOnNode(r: RunnerContext, taskId: string, nodeId: string): Promise<void> {
  const node = await r.nodes.get(nodeId);
  if (!node?.agentUrl) return;
  try {
    await (await r.agent.call(node, `/tasks/${taskId}/cancel`, {
      method: "POST",
      timeoutMs: requestTimeoutMs(r.t),
    })).body?.cancel();
  } catch (err) {
    // The next heartbeat's answer carries the cancel too.
    r.log(`cancel of ${taskId} on ${nodeId} not delivered now (${(err as Error).message}); the heartbeat carries it`);
  }
}

/** The runner gives up on a task (a deadline, a refusal, its node gone); an agent running it is told to stop. */
export async function fail(
  r: RunnerContext,
  task: TaskRecord,
  from: TaskStatus[],
  reason: string,
  when?: TransitionGuard,
): Promise<boolean> {
  const onNode = task.status === "dispatched" || task.status === "running";
  if (onNode) await r.tasks.requestCancel(task.id);
  const ok = await r.tasks.transition(task.id, from, "failed", { message: reason, error: reason, when });
  if (!ok) return false;
  r.log(`task ${task.id} failed: ${reason}`);
  r.wakeups.notify(task.id);
  if (onNode && task.nodeId) r.background(() => cancelOnNode(r, task.id, task.nodeId!));
  await taskLeftNode(r, task);
  return true;
}

/** Whether an agent's answer to a dispatch is a valid run state of `taskId`. */
function acceptedRun(text: string, taskId: string): boolean {
  try {
    const parsed = v.safeParse(TaskRunState, JSON.parse(text));
    return parsed.success && parsed.output.taskId === taskId;
  } catch {
    return false;
  }
}

/** The message of an agent's JSON error, or the start of its body. */
function agentMessage(text: string): string {
  return errorMessageOf(text) ?? text.slice(0, 200);
}

/** A succeeded task's status line; when its work was to be delivered, whether it was and where. */
function succeededMessage(result: TaskResult): string {
  const d = result.delivery;
  if (d?.status === "failed") {
    return `succeeded, not delivered: ${d.reason ?? d.code ?? "unknown reason"} (the patch is in the result)`;
  }
  if (d?.status === "delivered") {
    return `succeeded, delivered to branch ${d.branch}${
      d.pullRequest ? ` — pull request #${d.pullRequest.number} ${d.pullRequest.url}` : ""
    }`;
  }
  if (d?.status === "skipped") return `succeeded, nothing delivered: ${d.reason ?? "no changes"}`;
  return `succeeded (exit code ${result.exitCode})`;
}
