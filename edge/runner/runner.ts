/**
 * The task runner (docs/architecture.md § The runner), the only writer of task and node status. Progress is
 * event-driven: a submission places the task on a node (or provisions one), the agent's ready callback
 * dispatches waiting tasks at once, the result callback finishes them. `tick()` is only the safety net: it
 * fails tasks whose own deadline (from the one timer table) has passed, retries transient failures with
 * backoff, and reaps idle nodes. Every transition is a compare-and-set in SQL, so the tick, the callbacks and
 * any number of edge instances never fight.
 *
 * This class is the door the rest of the edge uses; the work is in placement.ts, dispatch.ts,
 * node-lifecycle.ts and tick.ts, which share one `RunnerContext`.
 */
import type { TaskResult, TaskStatus, TaskSubmission } from "../../shared/wire/task.ts";
import type { NodeRecord } from "../nodes/store.ts";
import type { TaskRecord, TransitionGuard } from "../tasks/store.ts";
import { type OrphanCounts, requestTimeoutMs, type RunnerContext, type RunnerDeps } from "./context.ts";
import { cancel, fail, markRunning, postDispatch, taskFinished } from "./dispatch.ts";
import {
  agentDegraded,
  agentReady,
  type AgentReport,
  type DegradedReport,
  drainNode,
  nodeFailed,
  nodeReady,
} from "./node-lifecycle.ts";
import { DispatchBatcher } from "./dispatch-batch.ts";
import { place, placeWaiting, provisionNode, submit, taskLeftNode } from "./placement.ts";
import { tick } from "./tick.ts";

export type { AgentReport, DegradedReport } from "./node-lifecycle.ts";
export type { RunnerDeps } from "./context.ts";

export class Runner {
  private readonly pending = new Set<Promise<unknown>>();
  private readonly r: RunnerContext;
  /** What the orphan reaper has done since this instance started. */
  readonly orphans: OrphanCounts = { passes: 0, deleted: 0, wouldDelete: 0, failed: 0 };

  constructor(d: RunnerDeps) {
    this.r = {
      ...d,
      t: d.timeouts,
      log: d.log ?? ((m) => console.error(`sam runner: ${m}`)),
      background: (work) => this.background(work),
      reaper: { running: false, counts: this.orphans },
      dispatches: new DispatchBatcher(d.agent),
    };
  }

  /** How long the edge waits for an agent's answer to a dispatch before treating it as a transient failure. */
  get requestTimeoutMs(): number {
    return requestTimeoutMs(this.r.t);
  }

  /** Run work after the current request has answered; failures are logged, never lost silently. */
  background(work: () => Promise<unknown>): void {
    const p = work().catch((err) => this.r.log(`background work failed: ${(err as Error).message}`));
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** Resolves when all background work (including work it started) is done. For tests and shutdown. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  // ---- placement (placement.ts) ----

  /** A submission, dispatched in its own write batch when a ready node of its key has a free slot. */
  submit(
    keyId: string,
    submission: TaskSubmission,
    idempotencyKey: string | null,
    now?: number,
  ): Promise<{ task: TaskRecord; created: boolean }> {
    return submit(this.r, keyId, submission, idempotencyKey, now);
  }

  /** Put a queued task on a node of its key; "capped" when it stays queued at the node cap. */
  place(taskId: string, fresh?: TaskRecord): Promise<"placed" | "capped" | "gone"> {
    return place(this.r, taskId, fresh);
  }

  /** A warm node for a key (or for any key): null when the node cap is reached. */
  provisionNode(ownerKeyId: string | null): Promise<NodeRecord | null> {
    return provisionNode(this.r, ownerKeyId);
  }

  /** A place under the node cap came free: place the tasks waiting for one. */
  placeWaiting(now?: number): Promise<void> {
    return placeWaiting(this.r, now);
  }

  /** A task left its node: a drained node goes, its slot goes to the key's next task. */
  taskLeftNode(task: Pick<TaskRecord, "keyId" | "nodeId">): Promise<void> {
    return taskLeftNode(this.r, task);
  }

  // ---- a task on its node (dispatch.ts) ----

  /** Send a task already `dispatched` again (a retry): a fresh inference token, the same task. */
  postDispatch(taskId: string, node: NodeRecord): Promise<void> {
    return postDispatch(this.r, taskId, node);
  }

  /** The agent has the task (its 202, a 409, or its first output): `dispatched → running`. */
  markRunning(taskId: string, nodeId: string): Promise<boolean> {
    return markRunning(this.r, taskId, nodeId);
  }

  /** The agent's result callback: the task ends as the agent says. */
  taskFinished(task: TaskRecord, result: TaskResult): Promise<boolean> {
    return taskFinished(this.r, task, result);
  }

  /** The user's cancel, from wherever the task is; false when it ended first. */
  cancel(task: TaskRecord): Promise<boolean> {
    return cancel(this.r, task);
  }

  /** The runner gives up on a task; an agent running it is told to stop. */
  fail(task: TaskRecord, from: TaskStatus[], reason: string, when?: TransitionGuard): Promise<boolean> {
    return fail(this.r, task, from, reason, when);
  }

  // ---- nodes (node-lifecycle.ts) ----

  // The two ready reports hand on through the public `nodeReady`/`nodeFailed`, as the callbacks did, so whoever
  // replaces one of those (the dispatch benchmark's polling anchor) replaces what follows a report.

  /** The agent's ready callback: the node is ready and its waiting tasks are dispatched (in the background). */
  async agentReady(nodeId: string, agent: AgentReport, now?: number): Promise<void> {
    if (await agentReady(this.r, nodeId, agent, now)) this.background(() => this.nodeReady(nodeId));
  }

  /** The ready callback of a degraded agent: the node fails, its tasks go elsewhere (in the background). */
  async agentDegraded(nodeId: string, agent: DegradedReport, now?: number): Promise<void> {
    if (await agentDegraded(this.r, nodeId, agent, now)) this.background(() => this.nodeFailed(nodeId, agent.reason));
  }

  /** A node that cannot work: its tasks back in the queue, its server deleted. */
  nodeFailed(nodeId: string, reason: string): Promise<void> {
    return nodeFailed(this.r, nodeId, reason);
  }

  /** A ready node: dispatch everything waiting for it. */
  nodeReady(nodeId: string): Promise<void> {
    return nodeReady(this.r, nodeId);
  }

  /** No new tasks for the node; deleted once its tasks are done. */
  drainNode(node: NodeRecord, reason: string): Promise<void> {
    return drainNode(this.r, node, reason);
  }

  // ---- the safety net (tick.ts) ----

  /** Apply deadlines, retry what failed transiently, place what was missed, reap idle nodes. Idempotent. */
  tick(now?: number): Promise<void> {
    return tick(this.r, now);
  }
}
