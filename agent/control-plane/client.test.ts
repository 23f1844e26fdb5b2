import { afterAll, describe, expect, test } from "bun:test";
import * as v from "valibot";
import { AgentHeartbeat, AgentReady } from "../../shared/wire/agent.ts";
import type { EventInput, TaskExecutor } from "../contracts.ts";
import { ControlPlaneClient, heartbeat, sendReady } from "./client.ts";

const NODE_TOKEN = "samnode_test_0123456789";
type Call = { path: string; auth: string | null; body: unknown };
const calls: Call[] = [];
let answers: (() => Response)[] = [];
const edge = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  async fetch(req) {
    calls.push({ path: new URL(req.url).pathname, auth: req.headers.get("authorization"), body: await req.json() });
    return answers.shift()?.() ?? Response.json({ ok: true });
  },
});
afterAll(() => edge.stop(true));
const client = new ControlPlaneClient(`http://127.0.0.1:${edge.port}`, NODE_TOKEN);

const ready: AgentReady = {
  nodeId: "node-1",
  version: "1.0.0",
  url: "http://127.0.0.1:1234",
  tlsFingerprint: null,
  startedAt: 1,
  bootTimeline: { source: "none", kernelUptimeMsAtAgentStart: null, agentStartedAt: 1, phases: [] },
  capabilities: {
    workspaceModes: ["host"],
    agents: ["builtin", "command"],
    maxConcurrentTasks: 2,
    arch: "x64",
    os: "linux",
  },
};
const errorAnswer = (status: number, message: string) => () =>
  Response.json({ error: { message, type: "unavailable_error", code: null } }, { status });

describe("control-plane client", () => {
  test("ready is retried with doubling backoff, capped, until the edge accepts it", async () => {
    calls.length = 0;
    answers = [
      errorAnswer(503, "edge starting"),
      errorAnswer(503, "edge starting"),
      () => new Response("nope", { status: 502 }),
    ];
    const events: EventInput[] = [];
    const ok = await sendReady({
      controlPlane: client,
      events: { record: (e) => events.push(e) },
      ready,
      initialBackoffMs: 10,
      maxBackoffMs: 25,
      signal: new AbortController().signal,
    });
    expect(ok).toBe(true);
    expect(calls.length).toBe(4);
    expect(calls.every((c) => c.path === "/api/agent/ready" && c.auth === `Bearer ${NODE_TOKEN}`)).toBe(true);
    expect(v.is(AgentReady, calls[0]!.body)).toBe(true);
    expect(events.map((e) => [e.type, (e.detail as { retryInMs?: number }).retryInMs])).toEqual([
      ["agent.ready.failed", 10],
      ["agent.ready.failed", 20],
      ["agent.ready.failed", 25],
      ["agent.ready.sent", undefined],
    ]);
    expect(events[0]!.message).toBe("ready callback failed: HTTP 503: edge starting; retrying in 10 ms");
    expect(events[2]!.message).toBe("ready callback failed: HTTP 502; retrying in 25 ms");
  });

  test("an unreachable edge is recorded, retried, and the loop stops when asked", async () => {
    const down = new ControlPlaneClient("http://127.0.0.1:9", NODE_TOKEN, 1_000);
    const events: EventInput[] = [];
    const stop = new AbortController();
    const run = sendReady({
      controlPlane: down,
      events: {
        record: (e) => {
          events.push(e);
          if (events.length === 3) stop.abort();
        },
      },
      ready,
      initialBackoffMs: 5,
      maxBackoffMs: 10,
      signal: stop.signal,
    });
    expect(await run).toBe(false);
    expect(events.length).toBe(3);
    expect(events.every((e) => e.type === "agent.ready.failed" && e.level === "warn")).toBe(true);
  });

  test("a heartbeat carries metrics and active tasks, and cancels what the edge asks for", async () => {
    calls.length = 0;
    answers = [() => Response.json({ ok: true, cancel: ["t1", "t9"] })];
    const cancelled: string[] = [];
    const executor = {
      activeTaskIds: () => ["t1"],
      cancel: async (id: string) => {
        cancelled.push(id);
        return id === "t1";
      },
    } as unknown as TaskExecutor;
    const events: EventInput[] = [];
    const ok = await heartbeat({
      controlPlane: client,
      events: { record: (e) => events.push(e) },
      nodeId: "node-1",
      startedAt: 0,
      now: () => 5_000,
      executor,
      latestMetrics: () => null,
    });
    expect(ok).toBe(true);
    const body = calls[0]!.body;
    expect(v.is(AgentHeartbeat, body)).toBe(true);
    expect(body).toEqual({ nodeId: "node-1", at: 5_000, uptimeMs: 5_000, activeTasks: ["t1"], metrics: null });
    expect(cancelled).toEqual(["t1", "t9"]);
    expect(events.map((e) => [e.type, e.taskId ?? null])).toEqual([["heartbeat.sent", null], ["task.step", "t1"], [
      "task.step",
      "t9",
    ]]);
  });

  test("a failed heartbeat is recorded with its reason, never thrown", async () => {
    answers = [errorAnswer(403, "token of another node")];
    const events: EventInput[] = [];
    const deps = {
      events: { record: (e: EventInput) => events.push(e) },
      nodeId: "node-1",
      startedAt: 0,
      executor: null,
      latestMetrics: () => null,
    };
    expect(await heartbeat({ ...deps, controlPlane: client })).toBe(false);
    expect(await heartbeat({ ...deps, controlPlane: new ControlPlaneClient("http://127.0.0.1:9", NODE_TOKEN) })).toBe(
      false,
    );
    expect(events.map((e) => e.type)).toEqual(["heartbeat.failed", "heartbeat.failed"]);
    expect(events[0]!.message).toBe("heartbeat failed: HTTP 403: token of another node");
    expect(JSON.stringify(events)).not.toContain(NODE_TOKEN);
  });
});
