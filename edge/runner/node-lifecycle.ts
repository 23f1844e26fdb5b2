/**
 * A node's life as the runner drives it: its server created at the provider, its agent's ready (or degraded)
 * report, draining, deletion or failure — and what each means for the tasks placed on it: dispatched once it
 * is ready, back in the queue when it will never come up.
 */
import type { AgentCapabilities } from "../../shared/wire/agent.ts";
import type { NodeStatus } from "../../shared/wire/api.ts";
import type { BootTimeline } from "../../shared/wire/boot.ts";
import type { NodeFields, NodeRecord } from "../nodes/store.ts";
import { ProviderCreateError } from "../providers/provider.ts";
import { BOOTING, type RunnerContext } from "./context.ts";
import { runnerDeadline } from "./deadlines.ts";
import { claimDispatch, dispatch } from "./dispatch.ts";
import { placeQueued, placeWaiting } from "./placement.ts";

/** What an agent's ready callback tells about itself, checked by the route (its certificate: pinnable). */
export type AgentReport = {
  url: string;
  /** The certificate (PEM) the edge pins for an `https` agent; null for an `http` one. */
  tlsCertificate: string | null;
  version: string;
  bootTimeline: BootTimeline;
  capabilities: AgentCapabilities;
};

/** What the ready callback of an agent that cannot serve work tells (`degraded`). */
export type DegradedReport = { reason: string; version: string; bootTimeline: BootTimeline };

/** The server of a node row just inserted: created at the provider, then the node boots. */
export async function createServer(
  r: RunnerContext,
  nodeId: string,
  nodeToken: string,
  agentToken: string,
  ownerKeyId: string | null,
): Promise<void> {
  try {
    const { server, timings } = await r.provider.create({
      nodeId,
      nodeToken,
      agentToken,
      controlPlaneUrl: r.publicUrl(),
      labels: { "sam-node": nodeId, ...(ownerKeyId ? { "sam-key": ownerKeyId } : {}) },
      // Recorded before anything else can fail, so no server exists that its node does not name.
      onServerCreated: (serverId) => r.nodes.update(nodeId, { providerServerId: serverId }),
    });
    await r.nodes.update(nodeId, { providerServerId: server.id, ipv4: server.ipv4 });
    await r.nodes.addTimings(nodeId, timings);
    // The agent may already have called ready (a local one is fast); then the node stays ready.
    await r.nodes.transition(nodeId, ["provisioning"], "booting", null);
    const node = await r.nodes.get(nodeId);
    for (const task of await r.tasks.inStatus(["provisioning"], { nodeId })) {
      if (node?.status === "ready") continue; // the ready handler dispatches these
      await r.tasks.transition(task.id, ["provisioning"], "waiting_for_agent", {
        message: `waiting for the agent of node ${nodeId}`,
        deadline: runnerDeadline("waiting_for_agent", Date.now(), r.t, node?.createdAt),
      });
    }
  } catch (err) {
    const reason = `provider create failed: ${(err as Error).message}`;
    r.log(`node ${nodeId}: ${reason}`);
    await r.nodes.transition(nodeId, ["provisioning"], "failed", reason);
    if (err instanceof ProviderCreateError && err.serverMayRemain) {
      // Another create for these tasks waits until this server is gone: the orphan reaper deletes it
      // (at once, its node having failed) and then puts them back in the queue.
      r.log(`node ${nodeId}: its server may still exist; its tasks wait for the orphan reaper`);
      return;
    }
    await requeueTasksOf(r, nodeId, reason);
    await placeWaiting(r);
  }
}

/** Move a node to `deleted` or `failed`; when it moved, its place under the cap goes to a waiting task. */
export async function retireNode(
  r: RunnerContext,
  nodeId: string,
  from: NodeStatus[],
  to: "deleted" | "failed",
  reason: string,
): Promise<boolean> {
  const ok = await r.nodes.transition(nodeId, from, to, reason);
  if (ok) r.background(() => placeWaiting(r));
  return ok;
}

/** Tasks of a node that will never come up go back to the queue (a transient failure), with backoff. */
export async function requeueTasksOf(r: RunnerContext, nodeId: string, reason: string): Promise<void> {
  for (const task of await r.tasks.inStatus(BOOTING, { nodeId })) {
    await r.tasks.transition(task.id, BOOTING, "queued", {
      message: `back in the queue: node ${nodeId} failed (${reason})`,
      nodeId: null,
      // The queue wait counts from submission, so a task cannot bounce between failing nodes forever.
      deadline: runnerDeadline("queued", task.createdAt, r.t),
      nextAttemptAt: Date.now() + r.t.retryBackoff,
    });
  }
}

/**
 * The agent's ready callback: the node becomes ready and learns its agent (address, certificate, slots). A
 * draining node keeps draining, but learns the agent too. True when the node became ready: what waits for it
 * is then to be dispatched (`nodeReady`).
 */
export async function agentReady(
  r: RunnerContext,
  nodeId: string,
  agent: AgentReport,
  now = Date.now(),
): Promise<boolean> {
  const fields: NodeFields = {
    agentUrl: agent.url,
    agentTlsCert: agent.tlsCertificate,
    agentVersion: agent.version,
    bootTimeline: agent.bootTimeline,
    capabilities: agent.capabilities,
    slots: agent.capabilities.maxConcurrentTasks,
    lastHeartbeatAt: now,
  };
  const became = await r.nodes.transition(nodeId, ["provisioning", "booting", "ready"], "ready", null, fields, now);
  if (!became) await r.nodes.update(nodeId, fields);
  await r.nodes.firstReady(nodeId, now);
  await r.nodes.addTimings(nodeId, [{ name: "agent_ready", at: now }]);
  return became;
}

/**
 * The ready callback of an agent that cannot serve work: the node fails with its reason, its timeline kept.
 * True when it failed now: its tasks are then to go elsewhere and its server to go (`nodeFailed`).
 */
export async function agentDegraded(
  r: RunnerContext,
  nodeId: string,
  agent: DegradedReport,
  now = Date.now(),
): Promise<boolean> {
  await r.nodes.update(nodeId, { bootTimeline: agent.bootTimeline, agentVersion: agent.version, lastHeartbeatAt: now });
  if (!(await r.nodes.transition(nodeId, ["provisioning", "booting", "ready"], "failed", agent.reason))) return false;
  await r.nodes.addTimings(nodeId, [{ name: "agent_degraded", at: now }]);
  return true;
}

/** A node that reported it cannot work (a degraded agent): its tasks go elsewhere and its server goes. */
export async function nodeFailed(r: RunnerContext, nodeId: string, reason: string): Promise<void> {
  const node = await r.nodes.get(nodeId);
  if (!node) return;
  await requeueTasksOf(r, nodeId, reason);
  await deleteServer(r, node, reason);
}

/** A node became ready: dispatch everything waiting for it at once, then the rest of its key's queue. */
export async function nodeReady(r: RunnerContext, nodeId: string): Promise<void> {
  const node = await r.nodes.get(nodeId);
  if (!node || node.status !== "ready") return;
  const waiting = await r.tasks.inStatus(BOOTING, { nodeId });
  await Promise.all(waiting.map(async (task) => {
    const claimed = await claimDispatch(r, task, node, BOOTING);
    if (claimed) await dispatch(r, claimed.task, node, claimed.token);
  }));
  if (node.ownerKeyId) await placeQueued(r, node.ownerKeyId);
}

/** Drain a node: no new tasks; deleted once its tasks are done (at once when idle). */
export async function drainNode(r: RunnerContext, node: NodeRecord, reason: string): Promise<void> {
  if (!(await r.nodes.transition(node.id, ["provisioning", "booting", "ready"], "draining", reason))) return;
  if (node.status !== "ready") await requeueTasksOf(r, node.id, reason);
  if ((await r.nodes.busyCount(node.id)) === 0) await deleteServer(r, { ...node, status: "draining" }, reason);
}

/** Delete a draining or failed node's server (its diagnostics kept first), then the node is `deleted`. */
export async function deleteServer(r: RunnerContext, node: NodeRecord, reason: string): Promise<void> {
  const fresh = (await r.nodes.get(node.id)) ?? node;
  if (fresh.agentUrl && r.archive) {
    const notes = await r.archive(fresh).catch((err) => [`archive failed: ${(err as Error).message}`]);
    r.log(`node ${node.id}: diagnostics before delete: ${notes.join("; ")}`);
  }
  if (fresh.providerServerId) await r.provider.delete(fresh.providerServerId);
  await retireNode(r, node.id, ["draining", "failed"], "deleted", reason);
}

/** Whether the provider says the node's server no longer exists (not when the provider itself fails). */
export async function serverGone(r: RunnerContext, node: NodeRecord): Promise<boolean> {
  if (!node.providerServerId) return false;
  try {
    return (await r.provider.get(node.providerServerId)) === null;
  } catch {
    return false; // the provider itself failing says nothing about the server
  }
}
