/**
 * The node agent's double for the edge's tests: it speaks docs/protocol.md — calls ready, heartbeats, accepts
 * `POST /tasks`, runs `command` tasks with `sh -c` (streaming their output as log batches, then the result),
 * and serves `/events`, `/metrics`, `/boot` and real SQLite exports. `hold` mode keeps tasks running until the
 * test feeds their log and result, to observe the states in between. What it reports about itself is minimal,
 * or seeded with the admin pages' fixtures (a boot timeline of known phase durations, an hour of metrics, an
 * event log). The real agent binary runs in the end-to-end tests; this one stays small and follows the
 * published shapes.
 */
import * as v from "valibot";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentReady } from "../../shared/wire/agent.ts";
import type { BootTimeline } from "../../shared/wire/boot.ts";
import type { NodeEvent } from "../../shared/wire/events.ts";
import type { MetricsSample } from "../../shared/wire/metrics.ts";
import { TaskDispatch, TaskDispatchBatch, type TaskLogEvent, type TaskResult } from "../../shared/wire/task.ts";
import { BOOT_PHASES, seedNodeEvents, seedSamples } from "./admin-seed.ts";
import { sqliteDownload, sqliteFile } from "./sqlite-file.ts";

export type AgentDoubleOptions = {
  nodeId: string;
  controlPlaneUrl: string;
  nodeToken: string;
  agentToken: string;
  capacity?: number;
  mode?: "run" | "hold";
  heartbeatMs?: number;
  /** Answer `POST /tasks` with this status instead of accepting (fault injection). */
  dispatchStatus?: number;
  /**
   * `POST /tasks/batch`: taken and reported in the ready callback (`true`, the default, as the real agent does);
   * `false`, an agent that predates it (not reported, the route unknown); or a status to answer the whole batch
   * with while still reporting it (fault injection).
   */
  batchDispatch?: boolean | number;
  /**
   * Serve HTTPS with this certificate, and report it in the ready callback; `report` overrides what the ready
   * callback says (a missing or foreign certificate, a wrong fingerprint).
   */
  tls?: { cert: string; key: string; report?: { tlsCertificate?: string | null; tlsFingerprint?: string | null } };
  /**
   * What the agent reports about itself. `minimal` (the default): no boot phases, one metrics sample, one
   * event, one row per export. `seeded`: the admin pages' fixtures — the boot phases of `BOOT_PHASES` counted
   * from `createdAt`, an hour of metrics, an event log of every level, 25 rows per export. `troubled`: the same
   * with a boot that went wrong (a `PHASE FAILED` and a phase that never ended).
   */
  diagnostics?: "minimal" | "seeded" | "troubled";
  /** When the node's server was created, which the seeded boot counts from; default: when the double starts. */
  createdAt?: number;
};

export type AgentDouble = {
  url: string;
  /** Every dispatch received, alone or in a batch, in order (duplicates included). */
  dispatches: TaskDispatch[];
  /** Each `POST /tasks/batch` received: how many tasks it carried (0: refused whole). */
  batchCalls: number[];
  cancels: string[];
  eventQueries: string[];
  ready(): Promise<Response>;
  heartbeat(activeTasks?: string[]): Promise<{ ok: boolean; cancel: string[] }>;
  /** Post a result for a held task, as the agent would. */
  finish(taskId: string, result: Partial<TaskResult>): Promise<Response>;
  /** Post a log batch for a task; plain lines become stdout events numbered on from the task's last batch. */
  logs(taskId: string, events: TaskLogEvent[] | string[]): Promise<Response>;
  active(): string[];
  stop(): Promise<void>;
};

/** What the double reports about itself: its boot timeline, metrics, event log, and its exports' sizes. */
type Diagnostics = {
  boot: BootTimeline;
  samples: MetricsSample[];
  events: NodeEvent[];
  exports: Record<"events" | "metrics", { table: string; rows: number }>;
};

function minimalDiagnostics(nodeId: string, startedAt: number): Diagnostics {
  return {
    boot: { source: "none", kernelUptimeMsAtAgentStart: null, agentStartedAt: startedAt, phases: [] },
    samples: [{
      at: startedAt,
      cpuPercent: 12.5,
      load1: 0.1,
      load5: 0.1,
      load15: 0.1,
      memTotalBytes: 1000,
      memUsedBytes: 500,
      swapTotalBytes: 0,
      swapUsedBytes: 0,
      disk: { path: "/", totalBytes: 100, usedBytes: 40, freeBytes: 60 },
    }],
    events: [{
      id: 1,
      at: startedAt,
      level: "info",
      type: "agent.start",
      nodeId,
      workspaceId: null,
      taskId: null,
      message: "started",
      detail: null,
    }],
    exports: { events: { table: "events", rows: 1 }, metrics: { table: "samples", rows: 1 } },
  };
}

function seededDiagnostics(nodeId: string, startedAt: number, createdAt: number, troubled: boolean): Diagnostics {
  const at = (s: number) => createdAt + s * 1000;
  let phases: BootTimeline["phases"] = BOOT_PHASES.map((p) => ({
    name: p.name,
    startedAt: at(p.start),
    endedAt: at(p.start + p.duration),
    durationMs: p.duration * 1000,
    status: "ok" as const,
  }));
  if (troubled) {
    phases = [
      ...phases.slice(0, 2),
      { name: "tls", startedAt: at(60), endedAt: at(70), durationMs: 10_000, status: "failed" },
      { name: "image-pull", startedAt: at(70), endedAt: null, durationMs: null, status: "unterminated" },
    ];
  }
  return {
    boot: {
      source: "journald",
      kernelUptimeMsAtAgentStart: 170_000,
      agentStartedAt: Math.min(startedAt, at(205)),
      phases,
    },
    samples: seedSamples(startedAt),
    events: seedNodeEvents(startedAt, nodeId),
    exports: { events: { table: "events", rows: 25 }, metrics: { table: "metrics", rows: 25 } },
  };
}

const errorResponse = (status: number, type: string, message: string) =>
  Response.json({ error: { message, type, code: null } }, { status });

export async function startAgentDouble(o: AgentDoubleOptions): Promise<AgentDouble> {
  const dispatches: TaskDispatch[] = [];
  const batchCalls: number[] = [];
  const batch = o.batchDispatch ?? true;
  const cancels: string[] = [];
  const eventQueries: string[] = [];
  const active = new Map<string, { proc?: ReturnType<typeof Bun.spawn> }>();
  const nextSeq = new Map<string, number>();
  const dir = mkdtempSync(join(tmpdir(), "sam-agent-double-"));
  const startedAt = Date.now();
  const capacity = o.capacity ?? 2;
  const diagnostics = (o.diagnostics ?? "minimal") === "minimal"
    ? minimalDiagnostics(o.nodeId, startedAt)
    : seededDiagnostics(o.nodeId, startedAt, o.createdAt ?? startedAt, o.diagnostics === "troubled");
  let heartbeatTimer: ReturnType<typeof setInterval> | null = null;

  const post = (path: string, body: unknown) =>
    fetch(`${o.controlPlaneUrl}${path}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${o.nodeToken}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });

  function postLogs(taskId: string, events: TaskLogEvent[]): Promise<Response> {
    for (const e of events) nextSeq.set(taskId, Math.max(nextSeq.get(taskId) ?? 0, e.seq + 1));
    return post(`/api/agent/tasks/${taskId}/events`, { events });
  }

  async function runCommand(d: TaskDispatch): Promise<void> {
    const command = d.agent.type === "command" ? d.agent.command : `echo ${JSON.stringify(d.prompt)}`;
    const proc = Bun.spawn(["sh", "-c", command], {
      cwd: dir,
      stdout: "pipe",
      stderr: "pipe",
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        OPENAI_BASE_URL: d.inference.baseUrl,
        OPENAI_API_KEY: d.inference.token,
      },
    });
    active.get(d.taskId)!.proc = proc;
    const out = await new Response(proc.stdout).text();
    const err = await new Response(proc.stderr).text();
    const exitCode = await proc.exited;
    const lines = [
      ...out.split("\n").filter(Boolean).map((m) => ({ stream: "stdout" as const, message: m })),
      ...err.split("\n").filter(Boolean).map((m) => ({ stream: "stderr" as const, message: m })),
    ];
    if (lines.length > 0) await postLogs(d.taskId, lines.map((l, seq) => ({ seq, at: Date.now(), ...l })));
    active.delete(d.taskId);
    const result: TaskResult = {
      status: exitCode === 0 ? "succeeded" : "failed",
      exitCode,
      steps: [],
      finishedAt: Date.now(),
    };
    if (exitCode !== 0) result.error = `command exited with ${exitCode}`;
    await post(`/api/agent/tasks/${d.taskId}/result`, result);
  }

  async function accept(req: Request): Promise<Response> {
    return take(await req.json());
  }

  /** One dispatch, as `POST /tasks` answers it; `/tasks/batch` answers each of its tasks the same way. */
  function take(body: unknown): Response {
    const parsed = v.safeParse(TaskDispatch, body);
    if (!parsed.success) return errorResponse(400, "invalid_request_error", v.summarize(parsed.issues));
    const d = parsed.output;
    dispatches.push(d);
    if (o.dispatchStatus) return errorResponse(o.dispatchStatus, "server_error", "injected");
    if (active.has(d.taskId)) return errorResponse(409, "conflict_error", "duplicate");
    if (active.size >= capacity) return errorResponse(429, "rate_limit_error", "at capacity");
    active.set(d.taskId, {});
    // Its log and result posts may meet an edge the test already stopped: they are lost, not an error.
    if ((o.mode ?? "run") === "run") void runCommand(d).catch(() => {});
    return Response.json(
      { taskId: d.taskId, status: "running", startedAt: Date.now(), finishedAt: null, exitCode: null },
      { status: 202 },
    );
  }

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: o.tls ? { cert: o.tls.cert, key: o.tls.key } : undefined,
    async fetch(req) {
      const url = new URL(req.url);
      const q = url.searchParams;
      if (url.pathname === "/health") {
        return Response.json({ ok: true, version: "double", uptimeMs: Date.now() - startedAt, nodeId: o.nodeId });
      }
      if (req.headers.get("Authorization") !== `Bearer ${o.agentToken}`) {
        return errorResponse(401, "authentication_error", "missing or invalid agent token");
      }
      if (req.method === "POST" && url.pathname === "/tasks") return accept(req);
      if (req.method === "POST" && url.pathname === "/tasks/batch" && batch !== false) {
        batchCalls.push(0);
        if (typeof batch === "number") return errorResponse(batch, "server_error", "injected");
        const parsed = v.safeParse(TaskDispatchBatch, await req.json());
        if (!parsed.success) return errorResponse(400, "invalid_request_error", v.summarize(parsed.issues));
        batchCalls[batchCalls.length - 1] = parsed.output.tasks.length;
        const results = [];
        for (const task of parsed.output.tasks) {
          const res = take(task);
          results.push({ status: res.status, body: await res.json() });
        }
        return Response.json({ results });
      }
      const cancel = /^\/tasks\/([^/]+)\/cancel$/.exec(url.pathname);
      if (req.method === "POST" && cancel) {
        cancels.push(cancel[1]!);
        const entry = active.get(cancel[1]!);
        entry?.proc?.kill();
        active.delete(cancel[1]!);
        return Response.json({ cancelled: Boolean(entry) });
      }
      switch (url.pathname) {
        case "/events": {
          eventQueries.push(url.search);
          const data = diagnostics.events.filter((e) =>
            (!q.get("level") || e.level === q.get("level")) && (!q.get("type") || e.type === q.get("type"))
          );
          return Response.json({ data: data.slice(0, Number(q.get("limit") ?? 100)), nextCursor: null });
        }
        case "/metrics": {
          const since = Number(q.get("since") ?? 0);
          return Response.json({ samples: diagnostics.samples.filter((s) => s.at >= since) });
        }
        case "/boot":
          return Response.json(diagnostics.boot);
        case "/events/export":
        case "/metrics/export": {
          const kind = url.pathname === "/events/export" ? "events" : "metrics";
          const { table, rows } = diagnostics.exports[kind];
          return sqliteDownload(sqliteFile(table, rows), `${o.nodeId}-${kind}.db`);
        }
      }
      return errorResponse(404, "not_found_error", `no route for ${req.method} ${url.pathname}`);
    },
  });
  const url = `${o.tls ? "https" : "http"}://127.0.0.1:${server.port}`;

  const double: AgentDouble = {
    url,
    dispatches,
    batchCalls,
    cancels,
    eventQueries,
    ready() {
      const body: AgentReady = {
        nodeId: o.nodeId,
        version: "double-1",
        url,
        ...(o.tls ? { tlsCertificate: o.tls.cert, ...o.tls.report } : {}),
        bootTimeline: diagnostics.boot,
        capabilities: {
          workspaceModes: ["host"],
          agents: ["command"],
          maxConcurrentTasks: capacity,
          ...(batch === false ? {} : { batchDispatch: true }),
          arch: process.arch,
          os: process.platform,
        },
        startedAt,
      };
      return post("/api/agent/ready", body);
    },
    async heartbeat(activeTasks) {
      const res = await post("/api/agent/heartbeat", {
        nodeId: o.nodeId,
        at: Date.now(),
        uptimeMs: Date.now() - startedAt,
        activeTasks: activeTasks ?? [...active.keys()],
        metrics: diagnostics.samples.at(-1),
      });
      return (await res.json()) as { ok: boolean; cancel: string[] };
    },
    finish(taskId, result) {
      active.delete(taskId);
      return post(`/api/agent/tasks/${taskId}/result`, {
        status: "succeeded",
        exitCode: 0,
        finishedAt: Date.now(),
        ...result,
      });
    },
    logs(taskId, events) {
      const first = nextSeq.get(taskId) ?? 0;
      return postLogs(
        taskId,
        events.map((e, i) =>
          typeof e === "string" ? { seq: first + i, at: Date.now(), stream: "stdout" as const, message: e } : e
        ),
      );
    },
    active: () => [...active.keys()],
    async stop() {
      if (heartbeatTimer) clearInterval(heartbeatTimer);
      for (const { proc } of active.values()) proc?.kill();
      await server.stop(true);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (o.heartbeatMs) heartbeatTimer = setInterval(() => void double.heartbeat().catch(() => {}), o.heartbeatMs);
  return double;
}

/** Read the protocol's tokens file (`KEY=VALUE` lines). */
export function readTokenFile(path: string): { nodeToken: string; agentToken: string } {
  const entries = Object.fromEntries(
    readFileSync(path, "utf8").split("\n").filter(Boolean).map((
      l,
    ) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  return { nodeToken: entries.SAM_NODE_TOKEN ?? "", agentToken: entries.SAM_AGENT_TOKEN ?? "" };
}
