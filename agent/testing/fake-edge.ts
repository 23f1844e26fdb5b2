/**
 * Test support: a small HTTP server playing the edge's callbacks (docs/protocol.md § Agent → edge): ready,
 * heartbeat (with cancel requests), and task events/results idempotent by `(taskId, seq)` like the real
 * edge, with switches for an outage. Plus an in-memory
 * `EventRecorder` and a `ControlPlane` over fetch, the two seams the executor is built against.
 */
import * as v from "valibot";
import { TaskLogBatch, type TaskLogEvent, TaskResult } from "../../shared/wire/task.ts";
import type { ControlPlane, EventInput, EventRecorder } from "../contracts.ts";
export { until } from "../../shared/testing/until.ts";

export type FakeEdge = {
  url: string;
  token: string;
  logs: Map<string, TaskLogEvent[]>;
  results: Map<string, TaskResult>;
  /** The last ready callback's body (the agent's URL and capabilities). */
  ready: Record<string, unknown> | null;
  /** Task ids the next heartbeat answers with in `cancel`. */
  cancel: string[];
  /** Every accepted line, including duplicates the edge ignored (to prove retries duplicate nothing). */
  received: { taskId: string; seq: number }[];
  /** While > 0, answer this many posts with 503. */
  failNext: number;
  /** Stop listening (connections are refused, as with an edge that is down) … */
  goDown(): Promise<void>;
  /** … and listen again on the same port. */
  comeBack(): void;
  linesOf(taskId: string): string[];
  stop(): Promise<void>;
};

export function startFakeEdge(token = "samnode_test"): FakeEdge {
  const edge = {
    token,
    logs: new Map<string, TaskLogEvent[]>(),
    results: new Map<string, TaskResult>(),
    received: [] as { taskId: string; seq: number }[],
    failNext: 0,
    ready: null as Record<string, unknown> | null,
    cancel: [] as string[],
  } as FakeEdge;
  const handle = async (req: Request): Promise<Response> => {
    if (req.headers.get("authorization") !== `Bearer ${edge.token}`) {
      return Response.json({ error: { message: "invalid node token", type: "authentication_error", code: null } }, {
        status: 401,
      });
    }
    if (edge.failNext > 0) {
      edge.failNext--;
      return Response.json({ error: { message: "busy", type: "unavailable_error", code: null } }, { status: 503 });
    }
    const path = new URL(req.url).pathname;
    if (path === "/api/agent/ready" && req.method === "POST") {
      edge.ready = (await req.json()) as Record<string, unknown>;
      return Response.json({ ok: true });
    }
    if (path === "/api/agent/heartbeat" && req.method === "POST") {
      const hb = (await req.json()) as { activeTasks: string[] };
      return Response.json({ ok: true, cancel: edge.cancel.filter((t) => hb.activeTasks.includes(t)) });
    }
    const m = /^\/api\/agent\/tasks\/([^/]+)\/(events|result)$/.exec(path);
    if (!m || req.method !== "POST") return new Response("not found", { status: 404 });
    const taskId = decodeURIComponent(m[1]!);
    const body = await req.json();
    if (m[2] === "events") {
      const batch = v.parse(TaskLogBatch, body);
      const have = edge.logs.get(taskId) ?? [];
      const seen = new Set(have.map((e) => e.seq));
      let accepted = 0;
      for (const e of batch.events) {
        edge.received.push({ taskId, seq: e.seq });
        if (seen.has(e.seq)) continue;
        seen.add(e.seq);
        have.push(e);
        accepted++;
      }
      have.sort((a, b) => a.seq - b.seq);
      edge.logs.set(taskId, have);
      return Response.json({ accepted, lastSeq: have.at(-1)?.seq ?? null });
    }
    if (!edge.results.has(taskId)) edge.results.set(taskId, v.parse(TaskResult, body));
    return Response.json({ ok: true });
  };
  let server: ReturnType<typeof Bun.serve> | null = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: handle });
  const port = server.port;
  edge.url = `http://127.0.0.1:${port}`;
  edge.goDown = async () => {
    await server?.stop(true);
    server = null;
  };
  edge.comeBack = () => {
    server ??= Bun.serve({ port, hostname: "127.0.0.1", fetch: handle });
  };
  edge.linesOf = (taskId) => (edge.logs.get(taskId) ?? []).map((e) => e.message);
  edge.stop = async () => {
    await server?.stop(true);
  };
  return edge;
}

export function fetchControlPlane(baseUrl: string, token: string): ControlPlane {
  return {
    post: (path, body, init) =>
      fetch(baseUrl + path, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: init?.signal,
      }),
  };
}

export function memoryRecorder(): EventRecorder & { events: EventInput[] } {
  const events: EventInput[] = [];
  return { events, record: (e) => void events.push(e) };
}

/** Poll until `check` returns a truthy value, or fail after `timeoutMs` naming what was awaited. */
