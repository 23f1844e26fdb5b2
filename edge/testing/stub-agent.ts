/**
 * A stub node agent for the admin pages' end-to-end tests: it speaks docs/protocol.md's read routes with
 * seeded diagnostics (a boot timeline whose phases have known durations, an hour of metrics, an event log,
 * real SQLite exports), calls ready when the test says so, and lets the test feed a task's log and result.
 * The real agent binary is its own issue; this stays small and follows the published shapes.
 */
import * as v from "valibot";
import type { AgentReady } from "../../shared/wire/agent.ts";
import type { BootTimeline } from "../../shared/wire/boot.ts";
import { TaskDispatch } from "../../shared/wire/task.ts";
import { BOOT_PHASES, seedNodeEvents, seedSamples } from "./admin-seed.ts";
import { sqliteDownload, sqliteFile } from "./sqlite-file.ts";

export type StubAgentOptions = {
  nodeId: string;
  controlPlaneUrl: string;
  nodeToken: string;
  agentToken: string;
  createdAt: number;
  /** A boot that went wrong: a `PHASE FAILED` and a phase that never ended. */
  troubledBoot?: boolean;
};

export type StubAgent = {
  url: string;
  bootTimeline: BootTimeline;
  dispatched: string[];
  ready(): Promise<Response>;
  heartbeat(): Promise<Response>;
  log(taskId: string, lines: string[]): Promise<Response>;
  finish(taskId: string, summary: string): Promise<Response>;
  stop(): Promise<void>;
};

const json = (body: unknown, status = 200) => Response.json(body, { status });

export async function startStubAgent(o: StubAgentOptions): Promise<StubAgent> {
  const startedAt = Date.now();
  const at = (s: number) => o.createdAt + s * 1000;
  const bootTimeline: BootTimeline = {
    source: "journald",
    kernelUptimeMsAtAgentStart: 170_000,
    agentStartedAt: Math.min(startedAt, at(205)),
    phases: BOOT_PHASES.map((p) => ({
      name: p.name,
      startedAt: at(p.start),
      endedAt: at(p.start + p.duration),
      durationMs: p.duration * 1000,
      status: "ok" as const,
    })),
  };
  if (o.troubledBoot) {
    bootTimeline.phases = [
      ...bootTimeline.phases.slice(0, 2),
      { name: "tls", startedAt: at(60), endedAt: at(70), durationMs: 10_000, status: "failed" },
      { name: "image-pull", startedAt: at(70), endedAt: null, durationMs: null, status: "unterminated" },
    ];
  }
  const samples = seedSamples(startedAt);
  const events = seedNodeEvents(startedAt, o.nodeId);
  const seqs = new Map<string, number>();
  const dispatched: string[] = [];

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      if (url.pathname === "/health") {
        return json({ ok: true, version: "stub", uptimeMs: Date.now() - startedAt, nodeId: o.nodeId });
      }
      if (req.headers.get("Authorization") !== `Bearer ${o.agentToken}`) {
        return json(
          { error: { message: "missing or invalid agent token", type: "authentication_error", code: null } },
          401,
        );
      }
      const q = url.searchParams;
      switch (url.pathname) {
        case "/events": {
          const data = events.filter((e) =>
            (!q.get("level") || e.level === q.get("level")) && (!q.get("type") || e.type === q.get("type"))
          );
          return json({ data: data.slice(0, Number(q.get("limit") ?? 100)), nextCursor: null });
        }
        case "/metrics": {
          const since = Number(q.get("since") ?? 0);
          return json({ samples: samples.filter((s) => s.at >= since) });
        }
        case "/boot":
          return json(bootTimeline);
        case "/events/export":
        case "/metrics/export": {
          const kind = url.pathname.slice(1, -"/export".length);
          return sqliteDownload(sqliteFile(kind, 25), `${o.nodeId}-${kind}.db`);
        }
        case "/tasks": {
          if (req.method !== "POST") break;
          const d = v.parse(TaskDispatch, await req.json());
          dispatched.push(d.taskId);
          return json(
            { taskId: d.taskId, status: "running", startedAt: Date.now(), finishedAt: null, exitCode: null },
            202,
          );
        }
      }
      return json({
        error: { message: `no route for ${req.method} ${url.pathname}`, type: "not_found_error", code: null },
      }, 404);
    },
  });
  const url = `http://127.0.0.1:${server.port}`;
  const post = (path: string, body: unknown) =>
    fetch(`${o.controlPlaneUrl}${path}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${o.nodeToken}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });

  return {
    url,
    bootTimeline,
    dispatched,
    ready() {
      const body: AgentReady = {
        nodeId: o.nodeId,
        version: "stub-1",
        url,
        bootTimeline,
        startedAt,
        capabilities: {
          workspaceModes: ["host"],
          agents: ["builtin", "command"],
          maxConcurrentTasks: 2,
          arch: process.arch,
          os: process.platform,
        },
      };
      return post("/api/agent/ready", body);
    },
    heartbeat() {
      return post("/api/agent/heartbeat", {
        nodeId: o.nodeId,
        at: Date.now(),
        uptimeMs: Date.now() - startedAt,
        activeTasks: [],
        metrics: samples.at(-1),
      });
    },
    log(taskId, lines) {
      const first = seqs.get(taskId) ?? 0;
      seqs.set(taskId, first + lines.length);
      return post(`/api/agent/tasks/${taskId}/events`, {
        events: lines.map((message, i) => ({ seq: first + i, at: Date.now(), stream: "stdout", message })),
      });
    },
    finish(taskId, summary) {
      return post(`/api/agent/tasks/${taskId}/result`, {
        status: "succeeded",
        exitCode: 0,
        summary,
        steps: [],
        finishedAt: Date.now(),
      });
    },
    async stop() {
      await server.stop(true);
    },
  };
}
