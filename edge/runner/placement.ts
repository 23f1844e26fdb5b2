/**
 * Placement: which node a queued task goes to — a ready node of its key (dispatched at once), a booting one
 * (it waits for the agent), or a new node while the node cap allows — and what is placed again when a slot
 * or a place under the cap comes free.
 */
import { TASK_SLOTS } from "../../shared/wire/agent.ts";
import type { TaskStatus, TaskSubmission } from "../../shared/wire/task.ts";
import { taskToken, TOKEN_PREFIX } from "../auth/authenticate.ts";
import { hashToken, randomToken } from "../auth/tokens.ts";
import { nodeFromRow, type NodeRecord } from "../nodes/store.ts";
import { newTaskId, type TaskRecord, type TransitionGuard } from "../tasks/store.ts";
import { dispatchLease, type RunnerContext } from "./context.ts";
import { runnerDeadline } from "./deadlines.ts";
import { asDispatched, claimDispatch, dispatch } from "./dispatch.ts";
import { createServer, deleteServer } from "./node-lifecycle.ts";

/**
 * A submission: the task is inserted — already dispatched, in the same statement, when a ready node of its
 * key has a free slot (edge/tasks/store.ts `submit`); the agent call (or the placement on another node) then
 * runs off the request's path.
 */
export async function submit(
  r: RunnerContext,
  keyId: string,
  submission: TaskSubmission,
  idempotencyKey: string | null,
  now = Date.now(),
): Promise<{ task: TaskRecord; created: boolean }> {
  // The task's id is made here, so that its inference token can name it (taskToken).
  const taskId = newTaskId(now);
  const token = taskToken(taskId);
  const { task, created, node } = await r.tasks.submit(
    keyId,
    submission,
    idempotencyKey,
    runnerDeadline("queued", now, r.t),
    now,
    {
      heartbeatAfter: now - r.t.nodeStale,
      deadline: runnerDeadline("dispatched", now, r.t),
      nextAttemptAt: dispatchLease(r.t, now),
      inferenceTokenHash: hashToken(token),
      taskId,
    },
  );
  if (created) {
    if (node) {
      const record = nodeFromRow(node);
      r.background(() => dispatch(r, task, record, token));
    } else {
      r.background(() => place(r, task.id, task));
    }
  }
  return { task, created };
}

/**
 * Put a queued task on a node of its key: a ready one (dispatch now), a booting one, or a new one if the
 * node cap allows. Returns "capped" when the task stays queued because the cap is reached; it is placed
 * again as soon as a node goes away (see `placeWaiting`). `fresh` is the record just written (a
 * submission), which spares the first read.
 */
export async function place(
  r: RunnerContext,
  taskId: string,
  fresh?: TaskRecord,
): Promise<"placed" | "capped" | "gone"> {
  for (let attempt = 0; attempt < 4; attempt++) {
    const task = attempt === 0 && fresh ? fresh : await r.tasks.get(taskId);
    if (!task || task.status !== "queued") return "gone";
    const now = Date.now();
    let node = await r.nodes.findSlot(task.keyId, r.t, now);
    let launch = () => {};
    if (!node) {
      // A read first: at the cap (the usual case in a burst) the insert, a write, is not even tried. The
      // insert itself is what enforces the cap.
      const probe = await r.nodes.capacity(task.keyId);
      const made = probe.capped < r.maxNodes ? await newNode(r, task.keyId) : null;
      // The insert lost the last place, but the node made meanwhile (by a concurrent placement) may have a slot.
      if (
        !made && probe.capped < r.maxNodes && attempt < 3 &&
        (await r.nodes.findSlot(task.keyId, r.t, now))
      ) continue;
      if (!made) {
        // Stay queued. The queue-wait deadline still runs; a node going away places it (event-driven), the
        // tick is the backstop. An idle node of another key gives way, so no key waits a warm time out.
        const idle = probe.idleElsewhere
          ? await r.nodes.drainIdleFor(
            task.keyId,
            `idle, and key ${task.keyId} waits at the node cap (${r.maxNodes})`,
            now,
          )
          : null;
        if (idle) await deleteServer(r, idle, idle.statusReason ?? "drained");
        return "capped";
      }
      ({ node, launch } = made);
    }
    if (node.ownerKeyId === null && !(await r.nodes.claim(node.id, task.keyId))) continue;
    const nodeStatus = node.status;
    const target: TaskStatus = nodeStatus === "ready"
      ? "dispatched"
      : nodeStatus === "booting"
      ? "waiting_for_agent"
      : "provisioning";
    const capacity: TransitionGuard = { nodeHasSlot: { nodeId: node.id, status: nodeStatus, keyId: task.keyId } };
    if (target === "dispatched") {
      const claimed = await claimDispatch(r, task, node, ["queued"], capacity);
      if (claimed) {
        // The agent call runs on its own, so a loop placing a queue does not wait for each agent in turn.
        r.background(() => dispatch(r, claimed.task, node, claimed.token));
        return "placed";
      }
      continue;
    }
    const ok = await r.tasks.transition(task.id, ["queued"], target, {
      message: target === "provisioning"
        ? `node ${node.id} is being provisioned`
        : `waiting for the agent of node ${node.id}`,
      nodeId: node.id,
      deadline: runnerDeadline(target, now, r.t, node.createdAt),
      when: capacity,
      now,
    });
    launch(); // even when another instance placed the task first: the node then stays warm for the next one
    if (ok) return "placed";
  }
  return "gone";
}

/** Insert a node row and start creating its server in the background; null when the node cap is reached. */
export async function provisionNode(r: RunnerContext, ownerKeyId: string | null): Promise<NodeRecord | null> {
  const made = await newNode(r, ownerKeyId);
  made?.launch();
  return made?.node ?? null;
}

/**
 * A node row with fresh credentials, inserted only under the node cap (checked in the insert itself);
 * `launch` starts the server create (after the caller placed its task). Null at the cap.
 */
async function newNode(
  r: RunnerContext,
  ownerKeyId: string | null,
): Promise<{ node: NodeRecord; launch: () => void } | null> {
  const id = `n-${randomToken("x").slice(2, 12).toLowerCase()}`;
  const nodeToken = randomToken(TOKEN_PREFIX.node);
  const agentToken = randomToken(TOKEN_PREFIX.agent);
  const now = Date.now();
  const node = await r.nodes.insertUnderCap({
    id,
    provider: r.provider.name,
    ownerKeyId,
    nodeTokenHash: hashToken(nodeToken),
    agentToken,
    slots: TASK_SLOTS.default,
    now,
  }, r.maxNodes);
  if (!node) return null;
  return { node, launch: () => r.background(() => createServer(r, id, nodeToken, agentToken, ownerKeyId)) };
}

/**
 * A node left the count of the cap (deleted or failed): place the tasks waiting for a place, oldest first.
 * Once one of them meets the cap again the rest of its key waits too (the cap is shared), so a long queue
 * costs a few statements, not one per task.
 */
export async function placeWaiting(r: RunnerContext, now = Date.now()): Promise<void> {
  const capped = new Set<string>();
  // Tasks backing off after a failed node are left to their backoff (the tick places them).
  for (const task of await r.tasks.inStatus(["queued"], { retryDue: now, limit: 100 })) {
    if (capped.has(task.keyId)) continue;
    if ((await place(r, task.id, task)) === "capped") capped.add(task.keyId);
  }
}

/**
 * A task left a node (the triggers already noted when the node went idle): a drained node goes, and its
 * slot goes to the next queued task of the key.
 */
export async function taskLeftNode(r: RunnerContext, task: Pick<TaskRecord, "keyId" | "nodeId">): Promise<void> {
  let idle = false;
  if (task.nodeId) {
    const node = await r.nodes.get(task.nodeId);
    if (node?.status === "draining" && node.tasksOnNode === 0) await deleteServer(r, node, "drained");
    else idle = node?.status === "ready" && node.tasksOnNode === 0;
  }
  await placeQueued(r, task.keyId);
  // A node its key no longer needs is what another key may be waiting for at the cap.
  if (idle) await placeWaiting(r);
}

/** Place the queued tasks of one key (a slot of it came free, or the tick found them waiting). */
export async function placeQueued(r: RunnerContext, keyId: string, now?: number): Promise<void> {
  const queued = await r.tasks.inStatus(["queued"], { keyId, retryDue: now, limit: 32 });
  if (queued.length === 0) return;
  // First every free slot of the key's ready nodes, in one write batch; then the rest one by one (a booting
  // node's slot, or a new node).
  const at = Date.now();
  const deadline = runnerDeadline("dispatched", at, r.t);
  const nextAttemptAt = dispatchLease(r.t, at);
  const tokens = new Map(queued.map((t) => [t.id, taskToken(t.id)]));
  const placed = await r.tasks.dispatchQueued(
    keyId,
    queued.map((t) => ({ id: t.id, inferenceTokenHash: hashToken(tokens.get(t.id)!) })),
    {
      heartbeatAfter: at - r.t.nodeStale,
      deadline,
      nextAttemptAt,
    },
    at,
  );
  for (const task of queued) {
    const node = placed.get(task.id);
    if (!node) continue;
    const dispatched = asDispatched(task, String(node.id), at, deadline, nextAttemptAt);
    r.background(() => dispatch(r, dispatched, nodeFromRow(node), tokens.get(task.id)!));
  }
  // No slot and no new node for this key means none for its later tasks either.
  for (const task of queued) {
    if (placed.has(task.id)) continue;
    if ((await place(r, task.id, task)) === "capped") return;
  }
}
