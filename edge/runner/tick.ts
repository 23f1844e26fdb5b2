/**
 * The tick: the runner's safety net, run on an interval (or `Deno.cron`). Progress is event-driven; the tick
 * only catches what an event missed — a deadline passed, a dispatch that failed transiently or whose instance
 * died, a ready callback that reached a dead instance, a queue left waiting, a boot past its budget, a node
 * gone or idle past its warm time, a server no node owns. Each step is idempotent and safe to run on several
 * instances at once: every move it makes is a compare-and-set.
 */
import { formatDuration } from "../../shared/duration.ts";
import { nodeHealth, type NodeRecord } from "../nodes/store.ts";
import type { TaskRecord } from "../tasks/store.ts";
import { BOOTING, requestTimeoutMs, type RunnerContext } from "./context.ts";
import { type ActiveStatus, runnerDeadline, SWEEP_LIMITS, sweepDeadline } from "./deadlines.ts";
import { fail, postDispatch } from "./dispatch.ts";
import { deleteServer, drainNode, nodeReady, requeueTasksOf, retireNode, serverGone } from "./node-lifecycle.ts";
import { reapOrphans } from "./orphans.ts";
import { placeQueued } from "./placement.ts";

/** Apply deadlines, retry what failed transiently, place what was missed, reap idle nodes. Idempotent. */
export async function tick(r: RunnerContext, now = Date.now()): Promise<void> {
  await failPastDeadline(r, now);
  await sweepStuck(r, now);
  await retryDispatches(r, now);
  await dispatchToReadyNodes(r);
  await placeQueuedKeys(r, now);
  await failLateBoots(r, now);
  await reapNodes(r, now);
  // Orphans: servers with SAM's label that no live node owns are deleted (in the background).
  r.background(() => reapOrphanServers(r, now));
}

/** Runner deadlines: each task's own, derived from the table when it entered its phase. */
async function failPastDeadline(r: RunnerContext, now: number): Promise<void> {
  for (const task of await r.tasks.pastDeadline(now)) {
    const deadline = runnerDeadline(task.status as ActiveStatus, task.statusAt, r.t);
    await fail(r, task, [task.status], await timeoutReason(r, task, deadline.describe), { deadlineBy: now });
  }
}

/** The sweep: a task with no (or a lost) deadline that has sat in its phase past the stuck limit. */
async function sweepStuck(r: RunnerContext, now: number): Promise<void> {
  for (const status of Object.keys(SWEEP_LIMITS) as ActiveStatus[]) {
    const limit = r.t[SWEEP_LIMITS[status]];
    for (const task of await r.tasks.inStatus([status], { enteredBefore: now - limit })) {
      const sweep = sweepDeadline(status, task.statusAt, r.t);
      await fail(r, task, [status], await timeoutReason(r, task, sweep.describe), { enteredBy: now - limit });
    }
  }
}

/** Dispatches that failed transiently, or whose dispatching instance died before the agent answered. */
async function retryDispatches(r: RunnerContext, now: number): Promise<void> {
  for (const task of await r.tasks.inStatus(["dispatched"], { retryDue: now })) {
    if (task.nextAttemptAt === null || !task.nodeId) continue;
    const lease = now + requestTimeoutMs(r.t) + r.t.retryBackoff * 2 ** Math.min(task.attempts, 8);
    if (!(await r.tasks.claimRetry(task.id, "dispatched", task.attempts, lease, now))) continue;
    const node = await r.nodes.get(task.nodeId);
    if (node?.status === "ready" || node?.status === "draining") await postDispatch(r, task.id, node);
  }
}

/** Tasks waiting for a node that is ready (its ready callback reached an instance that died). */
async function dispatchToReadyNodes(r: RunnerContext): Promise<void> {
  for (const node of await r.nodes.inStatus(["ready"])) {
    if ((await r.tasks.inStatus(BOOTING, { nodeId: node.id, limit: 1 })).length > 0) await nodeReady(r, node.id);
  }
}

/** Queued tasks (submitted while no node was free, or requeued after a failed node). */
async function placeQueuedKeys(r: RunnerContext, now: number): Promise<void> {
  const keys = new Set((await r.tasks.inStatus(["queued"], { retryDue: now })).map((t) => t.keyId));
  for (const keyId of keys) await placeQueued(r, keyId, now);
}

/** A boot past its budget fails: its tasks go back to the queue and its server goes. */
async function failLateBoots(r: RunnerContext, now: number): Promise<void> {
  for (const node of await r.nodes.inStatus(["provisioning", "booting"])) {
    if (node.createdAt + r.t.agentReady > now) continue;
    const reason = `agent not ready after ${formatDuration(r.t.agentReady)} (boot budget); ${stuckIn(node, now)}`;
    if (await retireNode(r, node.id, ["provisioning", "booting"], "failed", reason)) {
      await requeueTasksOf(r, node.id, reason);
      await deleteServer(r, { ...node, status: "failed" }, reason);
    }
  }
}

/**
 * Nodes past their use: one silent whose server the provider no longer has fails (with its tasks); a drained
 * one goes; an idle ready one past its warm time is drained.
 */
async function reapNodes(r: RunnerContext, now: number): Promise<void> {
  for (const node of await r.nodes.inStatus(["ready", "draining"])) {
    if (nodeHealth(node, r.t, now) === "unhealthy" && await serverGone(r, node)) {
      const reason = `no heartbeat for ${formatDuration(r.t.nodeUnhealthy)} and the provider no longer has its server`;
      if (await retireNode(r, node.id, ["ready", "draining"], "failed", reason)) {
        for (const task of await r.tasks.inStatus(["dispatched", "running"], { nodeId: node.id })) {
          await fail(r, task, [task.status], `node ${node.id} is gone (${reason})`);
        }
      }
      continue;
    }
    if ((await r.nodes.busyCount(node.id)) > 0) continue;
    if (node.status === "draining") await deleteServer(r, node, node.statusReason ?? "drained");
    else if (node.idleSince !== null && node.idleSince + r.t.nodeWarm <= now) {
      await drainNode(r, node, `idle for ${formatDuration(r.t.nodeWarm)} (warm time)`);
    }
  }
}

/**
 * One pass of the orphan reaper, then the tasks of failed creates whose server is now gone go back to
 * the queue. Runs in the background: the provider's listing may be slow or retrying.
 */
async function reapOrphanServers(r: RunnerContext, now: number): Promise<void> {
  const mode = r.orphanReaper ?? "off";
  if (mode === "off" || r.reaper.running) return;
  r.reaper.running = true;
  try {
    const report = await reapOrphans({ provider: r.provider, nodes: r.nodes, log: r.log }, {
      mode,
      graceMs: r.t.orphanGrace,
      now,
    });
    const counts = r.reaper.counts;
    counts.passes++;
    counts.deleted += report.deleted;
    counts.wouldDelete += report.wouldDelete;
    counts.failed += report.failed;
    const settled = new Set<string>();
    for (const task of await r.tasks.inStatus(BOOTING)) {
      if (!task.nodeId || settled.has(task.nodeId) || report.nodesWithServers.has(task.nodeId)) continue;
      const node = await r.nodes.get(task.nodeId);
      if (node?.status !== "failed") continue;
      settled.add(node.id);
      await requeueTasksOf(r, node.id, node.statusReason ?? "its node failed");
    }
  } catch (err) {
    r.log(
      `orphan reaper: cannot list the provider's servers (${(err as Error).message}); trying again on the next tick`,
    );
  } finally {
    r.reaper.running = false;
  }
}

/** "agent not ready after 15m (boot budget); node n-12 last phase: nodejs-install" */
async function timeoutReason(r: RunnerContext, task: TaskRecord, what: string): Promise<string> {
  if (!task.nodeId) return what;
  const node = await r.nodes.get(task.nodeId);
  return node ? `${what}; node ${node.id} last phase: ${lastPhase(node)}` : what;
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
