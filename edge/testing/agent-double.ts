/**
 * A small agent that speaks docs/protocol.md, for the edge's tests until (and beside) the real agent
 * binary: it calls ready, heartbeats, accepts `POST /tasks`, runs `command` tasks with `sh -c` (streaming
 * their output as log batches, then the result), and serves `/events`, `/metrics`, `/boot` and real SQLite
 * exports. `hold` mode keeps tasks running until the test finishes them, to observe the states in between.
 */
import { Database } from "bun:sqlite";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentReady } from "../../shared/wire/agent.ts";
import type { TaskDispatch, TaskLogEvent, TaskResult } from "../../shared/wire/task.ts";

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
   * Serve HTTPS with this certificate, and report it in the ready callback; `report` overrides what the ready
   * callback says (a missing or foreign certificate, a wrong fingerprint).
   */
  tls?: { cert: string; key: string; report?: { tlsCertificate?: string | null; tlsFingerprint?: string | null } };
};

export type AgentDouble = {
  url: string;
  /** Every `POST /tasks` received, in order (duplicates included). */
  dispatches: TaskDispatch[];
  cancels: string[];
  eventQueries: string[];
  ready(): Promise<Response>;
  heartbeat(activeTasks?: string[]): Promise<{ ok: boolean; cancel: string[] }>;
  /** Post a result for a held task, as the agent would. */
  finish(taskId: string, result: Partial<TaskResult>): Promise<Response>;
  logs(taskId: string, events: TaskLogEvent[]): Promise<Response>;
  active(): string[];
  stop(): Promise<void>;
};

export async function startAgentDouble(o: AgentDoubleOptions): Promise<AgentDouble> {
  const dispatches: TaskDispatch[] = [];
  const cancels: string[] = [];
  const eventQueries: string[] = [];
  const active = new Map<string, { proc?: ReturnType<typeof Bun.spawn> }>();
  const dir = mkdtempSync(join(tmpdir(), "sam-agent-double-"));
  const startedAt = Date.now();
  const capacity = o.capacity ?? 2;
  let heartbeatTimer: ReturnType<typeof setInterval> | null = null;

  const post = (path: string, body: unknown) =>
    fetch(`${o.controlPlaneUrl}${path}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${o.nodeToken}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });

  const unauthorized = () =>
    Response.json({ error: { message: "missing or invalid agent token", type: "authentication_error", code: null } }, {
      status: 401,
    });

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
    if (lines.length > 0) {
      await post(`/api/agent/tasks/${d.taskId}/events`, {
        events: lines.map((l, seq) => ({ seq, at: Date.now(), ...l })),
      });
    }
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

  function exportDb(kind: "events" | "metrics"): Response {
    const db = new Database(":memory:");
    db.run(
      kind === "events"
        ? "CREATE TABLE events (id INTEGER PRIMARY KEY, at INTEGER, type TEXT, message TEXT)"
        : "CREATE TABLE samples (at INTEGER PRIMARY KEY, cpu REAL)",
    );
    if (kind === "events") {
      db.run("INSERT INTO events (at, type, message) VALUES (?, 'agent.start', ?)", [
        startedAt,
        `agent double of ${o.nodeId}`,
      ]);
    } else db.run("INSERT INTO samples VALUES (?, 12.5)", [startedAt]);
    const bytes = db.serialize();
    db.close();
    return new Response(new Uint8Array(bytes), {
      headers: {
        "Content-Type": "application/vnd.sqlite3",
        "Content-Disposition": `attachment; filename="${o.nodeId}-${kind}.db"`,
        "Content-Length": String(bytes.byteLength),
      },
    });
  }

  const sample = {
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
  };

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: o.tls ? { cert: o.tls.cert, key: o.tls.key } : undefined,
    async fetch(req) {
      const url = new URL(req.url);
      if (url.pathname === "/health") {
        return Response.json({ ok: true, version: "double", uptimeMs: Date.now() - startedAt, nodeId: o.nodeId });
      }
      if (req.headers.get("Authorization") !== `Bearer ${o.agentToken}`) return unauthorized();
      if (req.method === "POST" && url.pathname === "/tasks") {
        const d = (await req.json()) as TaskDispatch;
        dispatches.push(d);
        if (o.dispatchStatus) {
          return Response.json({ error: { message: "injected", type: "server_error", code: null } }, {
            status: o.dispatchStatus,
          });
        }
        if (active.has(d.taskId)) {
          return Response.json({ error: { message: "duplicate", type: "conflict_error", code: null } }, {
            status: 409,
          });
        }
        if (active.size >= capacity) {
          return Response.json({ error: { message: "at capacity", type: "rate_limit_error", code: null } }, {
            status: 429,
          });
        }
        active.set(d.taskId, {});
        if ((o.mode ?? "run") === "run") void runCommand(d);
        return Response.json({
          taskId: d.taskId,
          status: "running",
          startedAt: Date.now(),
          finishedAt: null,
          exitCode: null,
        }, { status: 202 });
      }
      const cancel = /^\/tasks\/([^/]+)\/cancel$/.exec(url.pathname);
      if (req.method === "POST" && cancel) {
        cancels.push(cancel[1]!);
        const entry = active.get(cancel[1]!);
        entry?.proc?.kill();
        active.delete(cancel[1]!);
        return Response.json({ cancelled: Boolean(entry) });
      }
      if (url.pathname === "/events") {
        eventQueries.push(url.search);
        return Response.json({
          data: [{
            id: 1,
            at: startedAt,
            level: "info",
            type: "agent.start",
            nodeId: o.nodeId,
            workspaceId: null,
            taskId: null,
            message: "started",
            detail: null,
          }],
          nextCursor: null,
        });
      }
      if (url.pathname === "/events/export") return exportDb("events");
      if (url.pathname === "/metrics/export") return exportDb("metrics");
      if (url.pathname === "/metrics") return Response.json({ samples: [sample] });
      if (url.pathname === "/boot") {
        return Response.json({
          source: "none",
          kernelUptimeMsAtAgentStart: null,
          agentStartedAt: startedAt,
          phases: [],
        });
      }
      return Response.json({ error: { message: "no route", type: "not_found_error", code: null } }, { status: 404 });
    },
  });
  const url = `${o.tls ? "https" : "http"}://127.0.0.1:${server.port}`;

  const double: AgentDouble = {
    url,
    dispatches,
    cancels,
    eventQueries,
    ready() {
      const body: AgentReady = {
        nodeId: o.nodeId,
        version: "double-1",
        url,
        ...(o.tls ? { tlsCertificate: o.tls.cert, ...o.tls.report } : {}),
        bootTimeline: { source: "none", kernelUptimeMsAtAgentStart: null, agentStartedAt: startedAt, phases: [] },
        capabilities: {
          workspaceModes: ["host"],
          agents: ["command"],
          maxConcurrentTasks: capacity,
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
        metrics: sample,
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
      return post(`/api/agent/tasks/${taskId}/events`, { events });
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
