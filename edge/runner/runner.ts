/**
 * The task runner (docs/architecture.md § Task lifecycle). Progress is event-driven: a submission places the task on
 * a node (or provisions one), the agent's ready callback dispatches waiting tasks at once, the result
 * callback finishes them. `tick()` is only the safety net: it fails tasks whose own deadline (from the one
 * timer table) has passed, retries transient failures with backoff, and reaps idle nodes. Every transition
 * is a compare-and-set in SQL, so the tick, the callbacks and any number of edge instances never fight.
 */
import { formatDuration } from "../../shared/duration.ts";
import { errorMessageOf } from "../../shared/errors.ts";
import type { Timeouts } from "../../shared/timeouts.ts";
import { type AgentCapabilities, TASK_SLOTS } from "../../shared/wire/agent.ts";
import * as v from "valibot";
import {
  isTerminal,
  type TaskDispatch,
  type TaskResult,
  TaskRunState,
  type TaskStatus,
  type TaskSubmission,
} from "../../shared/wire/task.ts";
import type { BootTimeline } from "../../shared/wire/boot.ts";
import { TOKEN_PREFIX } from "../auth/authenticate.ts";
import { hashToken, randomToken } from "../auth/tokens.ts";
import { type Provider, ProviderCreateError } from "../providers/provider.ts";
import { type AgentClient, AgentUnreachable } from "../nodes/agent-client.ts";
import { type NodeFields, nodeFromRow, nodeHealth, type NodeRecord, type NodeStore } from "../nodes/store.ts";
import type { NodeStatus } from "../../shared/wire/api.ts";
import { dispatchingMessage, type TaskRecord, type TaskStore, type TransitionGuard } from "../tasks/store.ts";
import { type ActiveStatus, runnerDeadline, SWEEP_LIMITS, sweepDeadline } from "./deadlines.ts";
import { type OrphanReaperMode, reapOrphans } from "./orphans.ts";
import type { Wakeups } from "../tasks/wakeups.ts";

export type RunnerDeps = {
  tasks: TaskStore;
  nodes: NodeStore;
  provider: Provider;
  agent: AgentClient;
  timeouts: Timeouts;
  /** Most nodes with a server at once (provisioning, booting, ready or draining); a database invariant. */
  maxNodes: number;
  /** The edge's public URL, known once it listens. */
  publicUrl: () => string;
  wakeups: Wakeups;
  /** What the tick does with servers of no live node (`SAM_ORPHAN_REAPER`); off when absent. */
  orphanReaper?: OrphanReaperMode;
  /** Keeps a node's diagnostics (its agent's databases) before its server is deleted; best effort. */
  archive?: (node: NodeRecord) => Promise<string[]>;
  log?: (message: string) => void;
};

/** What an agent's ready callback tells about itself, checked by the route (its certificate: pinnable). */
export type AgentReport = {
  url: string;
  /** The certificate (PEM) the edge pins for an `https` agent; null for an `http` one. */
  tlsCertificate: string | null;
  version: string;
  bootTimeline: BootTimeline;
  capabilities: AgentCapabilities;
};

/** Slots a node is assumed to have before its agent reports its capabilities (the agent's default). */
const BOOTING: TaskStatus[] = ["provisioning", "waiting_for_agent"];

export class Runner {
  private readonly pending = new Set<Promise<unknown>>();
  private readonly t: Timeouts;
  private readonly log: (message: string) => void;
  private reaping = false;
  /** What the orphan reaper has done since this instance started. */
  readonly orphans = { passes: 0, deleted: 0, wouldDelete: 0, failed: 0 };

  constructor(private readonly d: RunnerDeps) {
    this.t = d.timeouts;
    this.log = d.log ?? ((m) => console.error(`sam runner: ${m}`));
  }

  /** How long the edge waits for an agent's answer to a dispatch before treating it as a transient failure. */
  get requestTimeoutMs(): number {
    return Math.max(1_000, Math.floor(this.t.dispatch / 3));
  }

  /** Run work after the current request has answered; failures are logged, never lost silently. */
  background(work: () => Promise<unknown>): void {
    const p = work().catch((err) => this.log(`background work failed: ${(err as Error).message}`));
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** Resolves when all background work (including work it started) is done. For tests and shutdown. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  // ---- events ----

  /**
   * A submission: the task is inserted and, when a ready node of its key has a free slot, dispatched to it in
   * the same write batch; the agent call (or the placement on another node) then runs off the request's path.
   */
  async submit(
    keyId: string,
    submission: TaskSubmission,
    idempotencyKey: string | null,
    now = Date.now(),
  ): Promise<{ task: TaskRecord; created: boolean }> {
    const token = randomToken(TOKEN_PREFIX.task);
    const { task, created, node } = await this.d.tasks.submit(
      keyId,
      submission,
      idempotencyKey,
      runnerDeadline("queued", now, this.t),
      now,
      {
        heartbeatAfter: now - this.t.nodeStale,
        deadline: runnerDeadline("dispatched", now, this.t),
        nextAttemptAt: this.dispatchLease(now),
        inferenceTokenHash: hashToken(token),
      },
    );
    if (created) {
      if (node) {
        const record = nodeFromRow(node);
        this.background(() => this.dispatch(task, record, token));
      } else {
        this.background(() => this.place(task.id, task));
      }
    }
    return { task, created };
  }

  /** A lease on a dispatch: if this instance dies before the agent answers, the tick retries after it. */
  private dispatchLease(now: number): number {
    return now + this.requestTimeoutMs + this.t.retryBackoff;
  }

  /**
   * Put a queued task on a node of its key: a ready one (dispatch now), a booting one, or a new one if the
   * node cap allows. Returns "capped" when the task stays queued because the cap is reached; it is placed
   * again as soon as a node goes away (see `placeWaiting`). `fresh` is the record just written (a
   * submission), which spares the first read.
   */
  async place(taskId: string, fresh?: TaskRecord): Promise<"placed" | "capped" | "gone"> {
    for (let attempt = 0; attempt < 4; attempt++) {
      const task = attempt === 0 && fresh ? fresh : await this.d.tasks.get(taskId);
      if (!task || task.status !== "queued") return "gone";
      const now = Date.now();
      let node = await this.d.nodes.findSlot(task.keyId, this.t, now);
      let launch = () => {};
      if (!node) {
        // A read first: at the cap (the usual case in a burst) the insert, a write, is not even tried. The
        // insert itself is what enforces the cap.
        const probe = await this.d.nodes.capacity(task.keyId);
        const made = probe.capped < this.d.maxNodes ? await this.newNode(task.keyId) : null;
        // The insert lost the last place, but the node made meanwhile (by a concurrent placement) may have a slot.
        if (
          !made && probe.capped < this.d.maxNodes && attempt < 3 &&
          (await this.d.nodes.findSlot(task.keyId, this.t, now))
        ) continue;
        if (!made) {
          // Stay queued. The queue-wait deadline still runs; a node going away places it (event-driven), the
          // tick is the backstop. An idle node of another key gives way, so no key waits a warm time out.
          const idle = probe.idleElsewhere
            ? await this.d.nodes.drainIdleFor(
              task.keyId,
              `idle, and key ${task.keyId} waits at the node cap (${this.d.maxNodes})`,
              now,
            )
            : null;
          if (idle) await this.deleteServer(idle, idle.statusReason ?? "drained");
          return "capped";
        }
        ({ node, launch } = made);
      }
      if (node.ownerKeyId === null && !(await this.d.nodes.claim(node.id, task.keyId))) continue;
      const nodeStatus = node.status;
      const target: TaskStatus = nodeStatus === "ready"
        ? "dispatched"
        : nodeStatus === "booting"
        ? "waiting_for_agent"
        : "provisioning";
      const capacity: TransitionGuard = { nodeHasSlot: { nodeId: node.id, status: nodeStatus, keyId: task.keyId } };
      if (target === "dispatched") {
        const claimed = await this.claimDispatch(task, node, ["queued"], capacity);
        if (claimed) {
          // The agent call runs on its own, so a loop placing a queue does not wait for each agent in turn.
          this.background(() => this.dispatch(claimed.task, node, claimed.token));
          return "placed";
        }
        continue;
      }
      const ok = await this.d.tasks.transition(task.id, ["queued"], target, {
        message: target === "provisioning"
          ? `node ${node.id} is being provisioned`
          : `waiting for the agent of node ${node.id}`,
        nodeId: node.id,
        deadline: runnerDeadline(target, now, this.t, node.createdAt),
        when: capacity,
        now,
      });
      launch(); // even when another instance placed the task first: the node then stays warm for the next one
      if (ok) return "placed";
    }
    return "gone";
  }

  /** Insert a node row and start creating its server in the background; null when the node cap is reached. */
  async provisionNode(ownerKeyId: string | null): Promise<NodeRecord | null> {
    const made = await this.newNode(ownerKeyId);
    made?.launch();
    return made?.node ?? null;
  }

  /**
   * A node row with fresh credentials, inserted only under the node cap (checked in the insert itself);
   * `launch` starts the server create (after the caller placed its task). Null at the cap.
   */
  private async newNode(ownerKeyId: string | null): Promise<{ node: NodeRecord; launch: () => void } | null> {
    const id = `n-${randomToken("x").slice(2, 12).toLowerCase()}`;
    const nodeToken = randomToken(TOKEN_PREFIX.node);
    const agentToken = randomToken(TOKEN_PREFIX.agent);
    const now = Date.now();
    const node = await this.d.nodes.insertUnderCap({
      id,
      provider: this.d.provider.name,
      ownerKeyId,
      nodeTokenHash: hashToken(nodeToken),
      agentToken,
      slots: TASK_SLOTS.default,
      now,
    }, this.d.maxNodes);
    if (!node) return null;
    return { node, launch: () => this.background(() => this.createServer(id, nodeToken, agentToken, ownerKeyId)) };
  }

  /**
   * A node left the count of the cap (deleted or failed): place the tasks waiting for a place, oldest first.
   * Once one of them meets the cap again the rest of its key waits too (the cap is shared), so a long queue
   * costs a few statements, not one per task.
   */
  async placeWaiting(now = Date.now()): Promise<void> {
    const capped = new Set<string>();
    // Tasks backing off after a failed node are left to their backoff (the tick places them).
    for (const task of await this.d.tasks.inStatus(["queued"], { retryDue: now, limit: 100 })) {
      if (capped.has(task.keyId)) continue;
      if ((await this.place(task.id, task)) === "capped") capped.add(task.keyId);
    }
  }

  /** Move a node to `deleted` or `failed`; when it moved, its place under the cap goes to a waiting task. */
  private async retireNode(
    nodeId: string,
    from: NodeStatus[],
    to: "deleted" | "failed",
    reason: string,
  ): Promise<boolean> {
    const ok = await this.d.nodes.transition(nodeId, from, to, reason);
    if (ok) this.background(() => this.placeWaiting());
    return ok;
  }

  private async createServer(
    nodeId: string,
    nodeToken: string,
    agentToken: string,
    ownerKeyId: string | null,
  ): Promise<void> {
    try {
      const { server, timings } = await this.d.provider.create({
        nodeId,
        nodeToken,
        agentToken,
        controlPlaneUrl: this.d.publicUrl(),
        labels: { "sam-node": nodeId, ...(ownerKeyId ? { "sam-key": ownerKeyId } : {}) },
        // Recorded before anything else can fail, so no server exists that its node does not name.
        onServerCreated: (serverId) => this.d.nodes.update(nodeId, { providerServerId: serverId }),
      });
      await this.d.nodes.update(nodeId, { providerServerId: server.id, ipv4: server.ipv4 });
      await this.d.nodes.addTimings(nodeId, timings);
      // The agent may already have called ready (a local one is fast); then the node stays ready.
      await this.d.nodes.transition(nodeId, ["provisioning"], "booting", null);
      const node = await this.d.nodes.get(nodeId);
      for (const task of await this.d.tasks.inStatus(["provisioning"], { nodeId })) {
        if (node?.status === "ready") continue; // the ready handler dispatches these
        await this.d.tasks.transition(task.id, ["provisioning"], "waiting_for_agent", {
          message: `waiting for the agent of node ${nodeId}`,
          deadline: runnerDeadline("waiting_for_agent", Date.now(), this.t, node?.createdAt),
        });
      }
    } catch (err) {
      const reason = `provider create failed: ${(err as Error).message}`;
      this.log(`node ${nodeId}: ${reason}`);
      await this.d.nodes.transition(nodeId, ["provisioning"], "failed", reason);
      if (err instanceof ProviderCreateError && err.serverMayRemain) {
        // Another create for these tasks waits until this server is gone: the orphan reaper deletes it
        // (at once, its node having failed) and then puts them back in the queue.
        this.log(`node ${nodeId}: its server may still exist; its tasks wait for the orphan reaper`);
        return;
      }
      await this.requeueTasksOf(nodeId, reason);
      await this.placeWaiting();
    }
  }

  /** Tasks of a node that will never come up go back to the queue (a transient failure), with backoff. */
  private async requeueTasksOf(nodeId: string, reason: string): Promise<void> {
    for (const task of await this.d.tasks.inStatus(BOOTING, { nodeId })) {
      await this.d.tasks.transition(task.id, BOOTING, "queued", {
        message: `back in the queue: node ${nodeId} failed (${reason})`,
        nodeId: null,
        // The queue wait counts from submission, so a task cannot bounce between failing nodes forever.
        deadline: runnerDeadline("queued", task.createdAt, this.t),
        nextAttemptAt: Date.now() + this.t.retryBackoff,
      });
    }
  }

  /**
   * The agent's ready callback: the node becomes ready and learns its agent (address, certificate, slots), then
   * everything waiting for it is dispatched. A draining node keeps draining, but learns the agent too.
   */
  async agentReady(nodeId: string, agent: AgentReport, now = Date.now()): Promise<void> {
    const fields: NodeFields = {
      agentUrl: agent.url,
      agentTlsCert: agent.tlsCertificate,
      agentVersion: agent.version,
      bootTimeline: agent.bootTimeline,
      capabilities: agent.capabilities,
      slots: agent.capabilities.maxConcurrentTasks,
      lastHeartbeatAt: now,
    };
    const became = await this.d.nodes.transition(
      nodeId,
      ["provisioning", "booting", "ready"],
      "ready",
      null,
      fields,
      now,
    );
    if (!became) await this.d.nodes.update(nodeId, fields);
    await this.d.nodes.firstReady(nodeId, now);
    await this.d.nodes.addTimings(nodeId, [{ name: "agent_ready", at: now }]);
    if (became) this.background(() => this.nodeReady(nodeId));
  }

  /** The agent's ready callback of an agent that cannot serve work: the node fails with its reason, its timeline kept. */
  async agentDegraded(
    nodeId: string,
    agent: { reason: string; version: string; bootTimeline: BootTimeline },
    now = Date.now(),
  ): Promise<void> {
    await this.d.nodes.update(nodeId, {
      bootTimeline: agent.bootTimeline,
      agentVersion: agent.version,
      lastHeartbeatAt: now,
    });
    if (await this.d.nodes.transition(nodeId, ["provisioning", "booting", "ready"], "failed", agent.reason)) {
      await this.d.nodes.addTimings(nodeId, [{ name: "agent_degraded", at: now }]);
      this.background(() => this.nodeFailed(nodeId, agent.reason));
    }
  }

  /** A node that reported it cannot work (a degraded agent): its tasks go elsewhere and its server goes. */
  async nodeFailed(nodeId: string, reason: string): Promise<void> {
    const node = await this.d.nodes.get(nodeId);
    if (!node) return;
    await this.requeueTasksOf(nodeId, reason);
    await this.deleteServer(node, reason);
  }

  /** The agent's ready callback: dispatch everything waiting for this node at once. */
  async nodeReady(nodeId: string): Promise<void> {
    const node = await this.d.nodes.get(nodeId);
    if (!node || node.status !== "ready") return;
    const waiting = await this.d.tasks.inStatus(BOOTING, { nodeId });
    await Promise.all(waiting.map(async (task) => {
      const claimed = await this.claimDispatch(task, node, BOOTING);
      if (claimed) await this.dispatch(claimed.task, node, claimed.token);
    }));
    if (node.ownerKeyId) await this.placeQueued(node.ownerKeyId);
  }

  /**
   * A task left a node (the triggers already noted when the node went idle): a drained node goes, and its
   * slot goes to the next queued task of the key.
   */
  async taskLeftNode(task: Pick<TaskRecord, "keyId" | "nodeId">): Promise<void> {
    let idle = false;
    if (task.nodeId) {
      const node = await this.d.nodes.get(task.nodeId);
      if (node?.status === "draining" && node.tasksOnNode === 0) await this.deleteServer(node, "drained");
      else idle = node?.status === "ready" && node.tasksOnNode === 0;
    }
    await this.placeQueued(task.keyId);
    // A node its key no longer needs is what another key may be waiting for at the cap.
    if (idle) await this.placeWaiting();
  }

  private async placeQueued(keyId: string, now?: number): Promise<void> {
    const queued = await this.d.tasks.inStatus(["queued"], { keyId, retryDue: now, limit: 32 });
    if (queued.length === 0) return;
    // First every free slot of the key's ready nodes, in one write batch; then the rest one by one (a booting
    // node's slot, or a new node).
    const at = Date.now();
    const deadline = runnerDeadline("dispatched", at, this.t);
    const nextAttemptAt = this.dispatchLease(at);
    const tokens = new Map(queued.map((t) => [t.id, randomToken(TOKEN_PREFIX.task)]));
    const placed = await this.d.tasks.dispatchQueued(
      keyId,
      queued.map((t) => ({ id: t.id, inferenceTokenHash: hashToken(tokens.get(t.id)!) })),
      {
        heartbeatAfter: at - this.t.nodeStale,
        deadline,
        nextAttemptAt,
      },
      at,
    );
    for (const task of queued) {
      const node = placed.get(task.id);
      if (!node) continue;
      const dispatched: TaskRecord = {
        ...task,
        status: "dispatched",
        statusAt: at,
        updatedAt: at,
        nodeId: String(node.id),
        deadlineAt: deadline.at,
        deadlineTimer: deadline.timer,
        nextAttemptAt,
        attempts: 0,
      };
      this.background(() => this.dispatch(dispatched, nodeFromRow(node), tokens.get(task.id)!));
    }
    // No slot and no new node for this key means none for its later tasks either.
    for (const task of queued) {
      if (placed.has(task.id)) continue;
      if ((await this.place(task.id, task)) === "capped") return;
    }
  }

  // ---- dispatch ----

  /**
   * The dispatch CAS, which also stores the attempt's inference token (one write batch). Returns the task as
   * the CAS left it, so the dispatch needs no re-read: what it sends (prompt, agent, repo, model) never changes.
   */
  private async claimDispatch(
    task: TaskRecord,
    node: NodeRecord,
    from: TaskStatus[],
    when?: TransitionGuard,
  ): Promise<{ task: TaskRecord; token: string } | null> {
    const now = Date.now();
    const deadline = runnerDeadline("dispatched", now, this.t);
    const nextAttemptAt = this.dispatchLease(now);
    const token = randomToken(TOKEN_PREFIX.task);
    const ok = await this.d.tasks.transition(task.id, from, "dispatched", {
      message: dispatchingMessage(node.id),
      nodeId: node.id,
      deadline,
      nextAttemptAt,
      when,
      inferenceTokenHash: hashToken(token),
      now,
    });
    if (!ok) return null;
    const dispatched: TaskRecord = {
      ...task,
      status: "dispatched",
      statusAt: now,
      updatedAt: now,
      nodeId: node.id,
      deadlineAt: deadline.at,
      deadlineTimer: deadline.timer,
      nextAttemptAt,
      attempts: 0,
    };
    return { task: dispatched, token };
  }

  /** Dispatch a task already `dispatched` (a retry of the tick): read it, mint a fresh token, send it. */
  async postDispatch(taskId: string, node: NodeRecord): Promise<void> {
    const task = await this.d.tasks.get(taskId);
    if (!task || task.status !== "dispatched") return;
    const token = randomToken(TOKEN_PREFIX.task);
    await this.d.tasks.mintInferenceToken(task.id, hashToken(token));
    await this.dispatch(task, node, token);
  }

  /** `POST <agent>/tasks`. 202 (or 409: it already has it) → running; 429/5xx/unreachable → retry later. */
  private async dispatch(task: TaskRecord, node: NodeRecord, token: string): Promise<void> {
    const body: TaskDispatch = {
      taskId: task.id,
      prompt: task.prompt,
      agent: task.agent,
      inference: { baseUrl: `${this.d.publicUrl()}/v1`, token },
      timeoutMs: this.t.taskRun,
    };
    if (task.repo) {
      body.repo = { url: task.repo.url };
      if (task.repo.branch) body.repo.branch = task.repo.branch;
      if (task.repo.credential) body.repo.credential = await this.d.tasks.openCredential(task.repo.credential);
      if (task.repo.push) body.repo.push = task.repo.push;
    }
    if (task.model) body.model = task.model;
    let transient: string;
    try {
      const res = await this.d.agent.call(node, "/tasks", { method: "POST", body, timeoutMs: this.requestTimeoutMs });
      const text = await res.text();
      if (res.status === 409) {
        // The agent has this task already (a retried dispatch whose first answer was lost).
        await this.markRunning(task.id, node.id);
        return;
      }
      if (res.status === 202 || res.status === 200) {
        if (acceptedRun(text, task.id)) {
          await this.markRunning(task.id, node.id);
          return;
        }
        transient = `HTTP ${res.status} with a body that is not this task's run state: ${text.slice(0, 200)}`;
      } else if (res.status !== 429 && res.status < 500) {
        const reason = `node ${node.id} refused the task: HTTP ${res.status} ${agentMessage(text)}`;
        await this.fail(task, ["dispatched"], reason);
        return;
      } else {
        transient = `HTTP ${res.status} ${agentMessage(text)}`;
      }
    } catch (err) {
      if (!(err instanceof AgentUnreachable)) throw err;
      transient = err.message;
    }
    const backoff = this.t.retryBackoff * 2 ** Math.min(task.attempts, 8);
    this.log(`dispatch of ${task.id} to ${node.id} failed (${transient}); retrying in ${backoff} ms`);
    await this.d.tasks.setNextAttempt(task.id, "dispatched", Date.now() + backoff);
  }

  /** The agent has the task: `dispatched → running`, with the run deadline from now. */
  async markRunning(taskId: string, nodeId: string): Promise<boolean> {
    const now = Date.now();
    const ok = await this.d.tasks.transition(taskId, ["dispatched"], "running", {
      message: `running on node ${nodeId}`,
      deadline: runnerDeadline("running", now, this.t),
      now,
    });
    if (ok) this.d.wakeups.notify(taskId);
    return ok;
  }

  /** The agent's result: the task ends as the agent says, and its slot goes to the next task. */
  async taskFinished(task: TaskRecord, result: TaskResult): Promise<boolean> {
    const error = result.status === "succeeded"
      ? null
      : (result.error ?? `the task ${result.status} with exit code ${result.exitCode}`);
    const ok = await this.d.tasks.transition(task.id, ["dispatched", "running"], result.status, {
      message: result.status === "succeeded" ? succeededMessage(result) : error!,
      error,
      result,
    });
    this.d.wakeups.notify(task.id);
    if (ok) this.background(() => this.taskLeftNode(task));
    return ok;
  }

  // ---- user actions ----

  /**
   * Cancel: a task not yet on a node stops at once; one on a node is marked and the agent is told. When the
   * runner moved the task meanwhile (the CAS lost), the cancel applies to wherever it is now. False when the
   * task ended first (or is gone).
   */
  async cancel(task: TaskRecord): Promise<boolean> {
    for (let current: TaskRecord | null = task; current && !isTerminal(current.status);) {
      if (await this.cancelFrom(current)) return true;
      current = await this.d.tasks.get(task.id);
    }
    return false;
  }

  private async cancelFrom(task: TaskRecord): Promise<boolean> {
    const onNode = task.status === "dispatched" || task.status === "running";
    if (onNode) await this.d.tasks.requestCancel(task.id);
    const ok = await this.d.tasks.transition(task.id, [task.status], "cancelled", {
      message: "cancelled by the user",
      error: "cancelled by the user",
    });
    if (!ok) return false;
    this.d.wakeups.notify(task.id);
    if (onNode && task.nodeId) this.background(() => this.cancelOnNode(task.id, task.nodeId!));
    this.background(() => this.taskLeftNode(task));
    return true;
  }

  private async cancelOnNode(taskId: string, nodeId: string): Promise<void> {
    const node = await this.d.nodes.get(nodeId);
    if (!node?.agentUrl) return;
    try {
      await (await this.d.agent.call(node, `/tasks/${taskId}/cancel`, {
        method: "POST",
        timeoutMs: this.requestTimeoutMs,
      })).body?.cancel();
    } catch (err) {
      // The next heartbeat's answer carries the cancel too.
      this.log(
        `cancel of ${taskId} on ${nodeId} not delivered now (${(err as Error).message}); the heartbeat carries it`,
      );
    }
  }

  async fail(
    task: TaskRecord,
    from: TaskStatus[],
    reason: string,
    when?: TransitionGuard,
  ): Promise<boolean> {
    const onNode = task.status === "dispatched" || task.status === "running";
    if (onNode) await this.d.tasks.requestCancel(task.id);
    const ok = await this.d.tasks.transition(task.id, from, "failed", { message: reason, error: reason, when });
    if (!ok) return false;
    this.log(`task ${task.id} failed: ${reason}`);
    this.d.wakeups.notify(task.id);
    if (onNode && task.nodeId) this.background(() => this.cancelOnNode(task.id, task.nodeId!));
    await this.taskLeftNode(task);
    return true;
  }

  /** Drain a node: no new tasks; deleted once its tasks are done (at once when idle). */
  async drainNode(node: NodeRecord, reason: string): Promise<void> {
    if (!(await this.d.nodes.transition(node.id, ["provisioning", "booting", "ready"], "draining", reason))) return;
    if (node.status !== "ready") await this.requeueTasksOf(node.id, reason);
    if ((await this.d.nodes.busyCount(node.id)) === 0) await this.deleteServer({ ...node, status: "draining" }, reason);
  }

  private async deleteServer(node: NodeRecord, reason: string): Promise<void> {
    const fresh = (await this.d.nodes.get(node.id)) ?? node;
    if (fresh.agentUrl && this.d.archive) {
      const notes = await this.d.archive(fresh).catch((err) => [`archive failed: ${(err as Error).message}`]);
      this.log(`node ${node.id}: diagnostics before delete: ${notes.join("; ")}`);
    }
    if (fresh.providerServerId) await this.d.provider.delete(fresh.providerServerId);
    await this.retireNode(node.id, ["draining", "failed"], "deleted", reason);
  }

  // ---- the safety net ----

  /** Apply deadlines, retry what failed transiently, place what was missed, reap idle nodes. Idempotent. */
  async tick(now = Date.now()): Promise<void> {
    // 1. Runner deadlines: each task's own, derived from the table when it entered its phase.
    for (const task of await this.d.tasks.pastDeadline(now)) {
      const deadline = runnerDeadline(task.status as ActiveStatus, task.statusAt, this.t);
      await this.fail(task, [task.status], await this.timeoutReason(task, deadline.describe), { deadlineBy: now });
    }
    // 2. The sweep: a task with no (or a lost) deadline that has sat in its phase past the stuck limit.
    for (const status of Object.keys(SWEEP_LIMITS) as ActiveStatus[]) {
      const limit = this.t[SWEEP_LIMITS[status]];
      for (const task of await this.d.tasks.inStatus([status], { enteredBefore: now - limit })) {
        const sweep = sweepDeadline(status, task.statusAt, this.t);
        await this.fail(task, [status], await this.timeoutReason(task, sweep.describe), { enteredBy: now - limit });
      }
    }
    // 3. Dispatches that failed transiently, or whose dispatching instance died before the agent answered.
    for (const task of await this.d.tasks.inStatus(["dispatched"], { retryDue: now })) {
      if (task.nextAttemptAt === null || !task.nodeId) continue;
      const lease = now + this.requestTimeoutMs + this.t.retryBackoff * 2 ** Math.min(task.attempts, 8);
      if (!(await this.d.tasks.claimRetry(task.id, "dispatched", task.attempts, lease, now))) continue;
      const node = await this.d.nodes.get(task.nodeId);
      if (node?.status === "ready" || node?.status === "draining") await this.postDispatch(task.id, node);
    }
    // 4. Tasks waiting for a node that is ready (its ready callback reached an instance that died).
    for (const node of await this.d.nodes.inStatus(["ready"])) {
      if ((await this.d.tasks.inStatus(BOOTING, { nodeId: node.id, limit: 1 })).length > 0) {
        await this.nodeReady(node.id);
      }
    }
    // 5. Queued tasks (submitted while no node was free, or requeued after a failed node).
    const keys = new Set((await this.d.tasks.inStatus(["queued"], { retryDue: now })).map((t) => t.keyId));
    for (const keyId of keys) await this.placeQueued(keyId, now);
    // 6. Nodes: a boot past its budget fails; idle ready nodes past their warm time are reaped.
    for (const node of await this.d.nodes.inStatus(["provisioning", "booting"])) {
      if (node.createdAt + this.t.agentReady > now) continue;
      const reason = `agent not ready after ${formatDuration(this.t.agentReady)} (boot budget); ${stuckIn(node, now)}`;
      if (await this.retireNode(node.id, ["provisioning", "booting"], "failed", reason)) {
        await this.requeueTasksOf(node.id, reason);
        await this.deleteServer({ ...node, status: "failed" }, reason);
      }
    }
    for (const node of await this.d.nodes.inStatus(["ready", "draining"])) {
      if (nodeHealth(node, this.t, now) === "unhealthy" && await this.serverGone(node)) {
        const reason = `no heartbeat for ${
          formatDuration(this.t.nodeUnhealthy)
        } and the provider no longer has its server`;
        if (await this.retireNode(node.id, ["ready", "draining"], "failed", reason)) {
          for (const task of await this.d.tasks.inStatus(["dispatched", "running"], { nodeId: node.id })) {
            await this.fail(task, [task.status], `node ${node.id} is gone (${reason})`);
          }
        }
        continue;
      }
      if ((await this.d.nodes.busyCount(node.id)) > 0) continue;
      if (node.status === "draining") await this.deleteServer(node, node.statusReason ?? "drained");
      else if (node.idleSince !== null && node.idleSince + this.t.nodeWarm <= now) {
        await this.drainNode(node, `idle for ${formatDuration(this.t.nodeWarm)} (warm time)`);
      }
    }
    // 7. Orphans: servers with SAM's label that no live node owns are deleted (in the background).
    this.background(() => this.reapOrphans(now));
  }

  /**
   * One pass of the orphan reaper, then the tasks of failed creates whose server is now gone go back to
   * the queue. Runs in the background: the provider's listing may be slow or retrying.
   */
  private async reapOrphans(now: number): Promise<void> {
    const mode = this.d.orphanReaper ?? "off";
    if (mode === "off" || this.reaping) return;
    this.reaping = true;
    try {
      const report = await reapOrphans({ provider: this.d.provider, nodes: this.d.nodes, log: this.log }, {
        mode,
        graceMs: this.t.orphanGrace,
        now,
      });
      this.orphans.passes++;
      this.orphans.deleted += report.deleted;
      this.orphans.wouldDelete += report.wouldDelete;
      this.orphans.failed += report.failed;
      const settled = new Set<string>();
      for (const task of await this.d.tasks.inStatus(BOOTING)) {
        if (!task.nodeId || settled.has(task.nodeId) || report.nodesWithServers.has(task.nodeId)) continue;
        const node = await this.d.nodes.get(task.nodeId);
        if (node?.status !== "failed") continue;
        settled.add(node.id);
        await this.requeueTasksOf(node.id, node.statusReason ?? "its node failed");
      }
    } catch (err) {
      this.log(
        `orphan reaper: cannot list the provider's servers (${(err as Error).message}); trying again on the next tick`,
      );
    } finally {
      this.reaping = false;
    }
  }

  private async serverGone(node: NodeRecord): Promise<boolean> {
    if (!node.providerServerId) return false;
    try {
      return (await this.d.provider.get(node.providerServerId)) === null;
    } catch {
      return false; // the provider itself failing says nothing about the server
    }
  }

  /** "agent not ready after 15m (boot budget); node n-12 last phase: nodejs-install" */
  private async timeoutReason(task: TaskRecord, what: string): Promise<string> {
    if (!task.nodeId) return what;
    const node = await this.d.nodes.get(task.nodeId);
    return node ? `${what}; node ${node.id} last phase: ${lastPhase(node)}` : what;
  }
}

/** "stuck in phase agent-download for 14m 2s" from the live progress, else the last phase reported. */
function stuckIn(node: NodeRecord, now: number): string {
  const phases = node.bootTimeline?.phases ?? [];
  const open = phases.filter((p) => p.status === "unterminated").sort((a, b) => a.startedAt - b.startedAt)[0];
  if (open) {
    return `stuck in phase ${open.name} for ${
      formatDuration(Math.round(Math.max(0, now - open.startedAt) / 1000) * 1000)
    }`;
  }
  const failed = phases.filter((p) => p.status === "failed").map((p) => p.name);
  return `${failed.length > 0 ? `failed phases: ${failed.join(", ")}; ` : ""}last phase: ${lastPhase(node)}`;
}

function lastPhase(node: NodeRecord): string {
  const phases = node.bootTimeline?.phases ?? [];
  const last = phases[phases.length - 1];
  return last ? last.name : `${node.status} (no boot phase reported)`;
}

/** The message of an agent's JSON error, or the start of its body. */
/** Whether an agent's answer to a dispatch is a valid run state of `taskId`. */
function acceptedRun(text: string, taskId: string): boolean {
  try {
    const parsed = v.safeParse(TaskRunState, JSON.parse(text));
    return parsed.success && parsed.output.taskId === taskId;
  } catch {
    return false;
  }
}

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
