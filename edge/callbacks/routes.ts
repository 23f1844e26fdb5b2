/**
 * Agent callbacks under `/api/agent/*` (docs/protocol.md § Agent → edge), node token only. A node may speak
 * only for itself and its own tasks (403 otherwise), and every callback is idempotent, because agents
 * retry until they get a 2xx.
 */
import { Hono } from "hono";
import { X509Certificate } from "node:crypto";
import { HttpError } from "../../shared/errors.ts";
import { sameFingerprint } from "../../shared/tls.ts";
import { parseOrThrow, readJsonBody } from "../../shared/validate.ts";
import { AgentHeartbeat, AgentReady } from "../../shared/wire/agent.ts";
import { isTerminal, TaskLogBatch, TaskResult } from "../../shared/wire/task.ts";
import type { Authenticate, Caller } from "../auth/caller.ts";
import { type CallerEnv, guard } from "../auth/guard.ts";
import type { NodeStore } from "../nodes/store.ts";
import type { Runner } from "../runner/runner.ts";
import type { Wakeups } from "../tasks/wakeups.ts";
import type { TaskRecord, TaskStore } from "../tasks/store.ts";
import { withReady } from "../nodes/boot-record.ts";
import { bootProgressRoute } from "./boot-progress.ts";

export type CallbackDeps = {
  authenticate: Authenticate;
  tasks: TaskStore;
  nodes: NodeStore;
  runner: Runner;
  wakeups: Wakeups;
  /** Log lines kept per task (`SAM_TASK_LOG_MAX_LINES`); the full output stays on the node. */
  taskLogMaxLines: number;
};

function nodeOf(caller: Caller): string {
  if (caller.kind !== "node") throw new HttpError(403, "agent callbacks need a node token", { code: "forbidden" });
  return caller.nodeId;
}

function sameNode(tokenNode: string, bodyNode: string): void {
  if (tokenNode !== bodyNode) {
    throw new HttpError(403, `this node token belongs to node ${tokenNode}, not ${bodyNode}`, { code: "wrong_node" });
  }
}

/**
 * The certificate the edge will pin for an agent (null for an `http` agent). An `https` agent must report a
 * certificate the edge's calls can verify — an X.509 end-entity certificate (no CA) naming the URL's host —
 * and a fingerprint it also reports must be that certificate's: the edge never pins what it cannot check,
 * and a node with a certificate every call would fail on learns why at once, in its ready answer.
 */
function pinnedCertificate(body: AgentReady): string | null {
  const url = new URL(body.url);
  if (url.protocol !== "https:") return null;
  if (!body.tlsCertificate) {
    throw new HttpError(
      400,
      "an https agent must report its certificate (tlsCertificate, PEM) so the edge can pin it",
      { code: "tls_certificate_required" },
    );
  }
  const invalid = (why: string) => new HttpError(400, `tlsCertificate ${why}`, { code: "tls_certificate_invalid" });
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(body.tlsCertificate);
  } catch {
    throw invalid("is not an X.509 certificate");
  }
  if (cert.ca) throw invalid("is a CA certificate; an agent's must be an end-entity one (basicConstraints CA:FALSE)");
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const named = /^[\d.]+$|:/.test(host) ? cert.checkIP(host) : cert.checkHost(host);
  if (!named) throw invalid(`does not name ${host} (the agent's URL) in its subjectAltName`);
  if (body.tlsFingerprint && !sameFingerprint(body.tlsFingerprint, cert.fingerprint256)) {
    throw new HttpError(
      400,
      `tlsFingerprint ${body.tlsFingerprint} is not the fingerprint of tlsCertificate (${cert.fingerprint256})`,
      { code: "tls_fingerprint_mismatch" },
    );
  }
  return cert.toString();
}

export function callbackRoutes(d: CallbackDeps): Hono<CallerEnv> {
  const app = new Hono<CallerEnv>();
  app.use("*", guard(d.authenticate, "node"));

  async function taskOfNode(nodeId: string, taskId: string): Promise<TaskRecord> {
    const task = await d.tasks.get(taskId);
    if (!task) throw new HttpError(404, `no task ${taskId}`, { code: "task_not_found" });
    if (task.nodeId !== nodeId) {
      throw new HttpError(403, `task ${taskId} is not assigned to node ${nodeId}`, { code: "wrong_node" });
    }
    return task;
  }

  bootProgressRoute(app, d, nodeOf);

  app.post("/ready", async (c) => {
    const nodeId = nodeOf(c.var.caller);
    const body = parseOrThrow(AgentReady, await readJsonBody(c.req.raw));
    sameNode(nodeId, body.nodeId);
    const now = Date.now();
    const known = await d.nodes.get(nodeId);
    // The first boot's timeline stays the record: a report from a later boot never replaces it with an empty one.
    const boot = withReady(known?.bootTimeline ?? null, body.bootTimeline, known?.bootProgress ?? []);
    if (boot.reboot) await d.nodes.addTimings(nodeId, [{ name: "machine_reboot", at: body.startedAt }]);
    if (body.degraded) {
      // It cannot serve work (no certificate, …): the node fails with the agent's reason, its timeline kept.
      await d.runner.agentDegraded(nodeId, {
        reason: `agent degraded: ${body.degraded}`,
        version: body.version,
        bootTimeline: boot.timeline,
      }, now);
      return c.json({ ok: true, degraded: true });
    }
    await d.runner.agentReady(nodeId, {
      url: body.url,
      tlsCertificate: pinnedCertificate(body),
      version: body.version,
      bootTimeline: boot.timeline,
      capabilities: body.capabilities,
    }, now);
    return c.json({ ok: true });
  });

  app.post("/heartbeat", async (c) => {
    const nodeId = nodeOf(c.var.caller);
    const body = parseOrThrow(AgentHeartbeat, await readJsonBody(c.req.raw));
    sameNode(nodeId, body.nodeId);
    // The warnings and errors it carries are kept beside the node, so they outlive it (its events.db may not).
    await d.nodes.recordHeartbeat(nodeId, {
      activeTasks: body.activeTasks,
      metrics: body.metrics,
      problems: body.recentProblems ?? [],
    });
    // Tell the agent to stop what the edge no longer wants: tasks cancelled, failed by a deadline, or not its own.
    const standing = await d.tasks.standing(body.activeTasks);
    const cancel = body.activeTasks.filter((id) => {
      const task = standing.get(id);
      return !task || task.nodeId !== nodeId || isTerminal(task.status) || task.cancelRequested;
    });
    return c.json({ ok: true, cancel });
  });

  app.post("/tasks/:taskId/events", async (c) => {
    const nodeId = nodeOf(c.var.caller);
    const task = await taskOfNode(nodeId, c.req.param("taskId"));
    const batch = parseOrThrow(TaskLogBatch, await readJsonBody(c.req.raw));
    const out = await d.tasks.appendLogs(task, batch.events, d.taskLogMaxLines);
    if (task.status === "dispatched") {
      // Output proves the agent runs it, even if its 202 got lost on the way back.
      await d.runner.markRunning(task.id, nodeId);
    }
    d.wakeups.notify(task.id);
    return c.json(out);
  });

  app.post("/tasks/:taskId/result", async (c) => {
    const nodeId = nodeOf(c.var.caller);
    const task = await taskOfNode(nodeId, c.req.param("taskId"));
    const result = parseOrThrow(TaskResult, await readJsonBody(c.req.raw));
    if (isTerminal(task.status)) return c.json({ ok: true, status: task.status }); // a retry, or after a cancel
    await d.runner.taskFinished(task, result);
    const now = await d.tasks.get(task.id);
    return c.json({ ok: true, status: now?.status ?? result.status });
  });

  return app;
}
