import { afterAll, describe, expect, test } from "bun:test";
import * as v from "valibot";
import { AgentHeartbeat, AgentReady } from "../../shared/wire/agent.ts";
import type { EventInput, TaskExecutor } from "../contracts.ts";
import { ControlPlaneClient, heartbeat, sendReady } from "./client.ts";
import { EventStore } from "../events/store.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readyReport } from "../../shared/testing/agent-ready.ts";

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

const ready: AgentReady = readyReport("node-1", {
  version: "1.0.0",
  url: "http://127.0.0.1:1234",
  tlsFingerprint: null,
  startedAt: 1,
  bootTimeline: { source: "none", kernelUptimeMsAtAgentStart: null, agentStartedAt: 1, phases: [] },
});
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

describe("heartbeats carry the node's recent warnings and errors", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  /** The real event store as the recorder, so what reaches the heartbeat is what `record()` saw. */
  function store(): EventStore {
    const dir = mkdtempSync(join(tmpdir(), "sam-problems-"));
    dirs.push(dir);
    let clock = 1_000;
    return new EventStore(join(dir, "events.db"), { nodeId: "node-1", now: () => clock++ });
  }
  const beat = (events: EventStore, controlPlane: ControlPlaneClient = client) =>
    heartbeat({
      controlPlane,
      events,
      problems: events.recentProblems,
      nodeId: "node-1",
      startedAt: 0,
      now: () => 5_000,
      executor: null,
      latestMetrics: () => null,
    });
  type Body = {
    recentProblems?: { type: string; message: string; repeats?: number; level: string; taskId?: string | null }[];
  };
  const carried = (i: number) =>
    ((calls[i]!.body as Body).recentProblems ?? []).map((p) => [p.type, p.message, p.repeats ?? 0]);

  test("sent once, cleared by an accepted heartbeat, kept through failed ones (an outage counted on one entry)", async () => {
    const events = store();
    calls.length = 0;
    events.record({ type: "agent.start", message: "starting" });
    events.record({ type: "disk", level: "warn", message: "disk 91% full" });
    events.record({ type: "error", level: "error", message: "clone failed", taskId: "t-1" });
    events.record({ type: "heartbeat.sent", level: "debug", message: "ok" });
    expect(await beat(events)).toBe(true);
    expect(v.is(AgentHeartbeat, calls[0]!.body)).toBe(true);
    expect(carried(0)).toEqual([["disk", "disk 91% full", 0], ["error", "clone failed", 0]]);
    expect((calls[0]!.body as Body).recentProblems![1]!.taskId).toBe("t-1");

    // Accepted: the next heartbeat carries nothing (and no empty field at all).
    expect(await beat(events)).toBe(true);
    expect("recentProblems" in (calls[1]!.body as object)).toBe(false);

    // The edge is away: each heartbeat carries what is waiting, its own failure included, counted once.
    events.record({ type: "disk", level: "warn", message: "disk 97% full" });
    answers = [
      errorAnswer(503, "edge restarting"),
      errorAnswer(503, "edge restarting"),
      errorAnswer(503, "edge restarting"),
    ];
    expect(await beat(events)).toBe(false);
    expect(await beat(events)).toBe(false);
    expect(await beat(events)).toBe(false);
    expect(carried(2)).toEqual([["disk", "disk 97% full", 0]]);
    expect(carried(3)).toEqual([["disk", "disk 97% full", 0], [
      "heartbeat.failed",
      "heartbeat failed: HTTP 503: edge restarting",
      0,
    ]]);
    expect(carried(4)).toEqual([["disk", "disk 97% full", 0], [
      "heartbeat.failed",
      "heartbeat failed: HTTP 503: edge restarting",
      1,
    ]]);
    // Back: the outage arrives as one entry (three failures), then nothing is sent again.
    expect(await beat(events)).toBe(true);
    expect(carried(5)).toEqual([["disk", "disk 97% full", 0], [
      "heartbeat.failed",
      "heartbeat failed: HTTP 503: edge restarting",
      2,
    ]]);
    expect(await beat(events)).toBe(true);
    expect(carried(6)).toEqual([]);
    events.close();
  });

  test("what is recorded while a heartbeat is on its way waits for the next one", async () => {
    const events = store();
    calls.length = 0;
    events.record({ type: "disk", level: "warn", message: "disk 91% full" });
    answers = [() => {
      // The edge is answering: the agent records meanwhile (a repeat and a new problem).
      events.record({ type: "disk", level: "warn", message: "disk 91% full" });
      events.record({ type: "error", level: "error", message: "late" });
      return Response.json({ ok: true });
    }];
    expect(await beat(events)).toBe(true);
    expect(carried(0)).toEqual([["disk", "disk 91% full", 0]]);
    expect(await beat(events)).toBe(true);
    expect(carried(1)).toEqual([["disk", "disk 91% full", 0], ["error", "late", 0]]);
    events.close();
  });

  test("bounded: the oldest go first and one note counts them; long fields are cut to what the edge takes", async () => {
    const events = store();
    calls.length = 0;
    for (let i = 0; i < 70; i++) events.record({ type: "disk", level: "warn", message: `warning ${i}` });
    events.record({ type: "x".repeat(100), level: "error", message: "m".repeat(5_000), taskId: "not a task id!" });
    expect(await beat(events)).toBe(true);
    const body = calls[0]!.body as Required<Body>;
    expect(v.is(AgentHeartbeat, body)).toBe(true);
    expect(body.recentProblems.length).toBe(50);
    // 71 recorded, 49 kept: 22 dropped, the note first (it stands for the oldest).
    expect(carried(0)[0]).toEqual([
      "problems.dropped",
      "older warnings and errors were dropped: more than the heartbeat carries came between two heartbeats",
      21,
    ]);
    expect(carried(0)[1]).toEqual(["disk", "warning 22", 0]);
    const last = body.recentProblems.at(-1)!;
    expect([last.type.length, last.message.length, last.taskId]).toEqual([64, 1_000, null]);
    expect(await beat(events)).toBe(true);
    expect(carried(1)).toEqual([]);
    events.close();
  });

  test("a heartbeat the edge refuses as invalid (400) drops what it carried, so the next one gets through", async () => {
    const events = store();
    calls.length = 0;
    events.record({ type: "disk", level: "warn", message: "disk 91% full" });
    answers = [errorAnswer(400, "recentProblems.0.message: too long")];
    expect(await beat(events)).toBe(false);
    expect(await beat(events)).toBe(true);
    expect(carried(1)).toEqual([[
      "heartbeat.failed",
      "heartbeat failed: HTTP 400: recentProblems.0.message: too long",
      0,
    ]]);
    events.close();
  });
});
