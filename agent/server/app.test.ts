import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { ErrorBody, HttpError } from "../../shared/errors.ts";
import type { BootTimeline } from "../../shared/wire/boot.ts";
import type { TaskDispatch } from "../../shared/wire/task.ts";
import type { TaskExecutor, TaskRunState } from "../contracts.ts";
import { EventStore } from "../events/store.ts";
import { ResourceMonitor } from "../monitor/monitor.ts";
import { MetricsStore } from "../monitor/store.ts";
import { createAgentApp } from "./app.ts";

const TOKEN = "samagent_test_0123456789";
const dir = mkdtempSync(join(tmpdir(), "sam-agent-server-"));
const events = new EventStore(join(dir, "events.db"), { nodeId: "node-1" });
const metrics = new MetricsStore(join(dir, "metrics.db"));
let clock = Date.now();
const monitor = new ResourceMonitor({
  store: metrics,
  events,
  intervalMs: 60_000,
  dataDir: dir,
  now: () => (clock += 60_000),
});
let boot: BootTimeline | null = null;

/** The task routes only delegate; this records what reached the executor seam. */
const dispatched: TaskDispatch[] = [];
const executor: TaskExecutor = {
  async start(d) {
    if (d.taskId === "t-boom") throw new Error("the executor broke");
    if (dispatched.some((x) => x.taskId === d.taskId)) {
      throw new HttpError(409, `task ${d.taskId} is already on this node`);
    }
    dispatched.push(d);
    return { taskId: d.taskId, status: "running", startedAt: 1, finishedAt: null, exitCode: null };
  },
  status: (
    id,
  ):
    | TaskRunState
    | null => (dispatched.some((d) => d.taskId === id)
      ? { taskId: id, status: "running", startedAt: 1, finishedAt: null, exitCode: null }
      : null),
  cancel: async (id) => dispatched.some((d) => d.taskId === id),
  activeTaskIds: () => dispatched.map((d) => d.taskId),
  shutdown: async () => {},
};

function serve(withExecutor: boolean) {
  const app = createAgentApp({
    nodeId: "node-1",
    agentToken: TOKEN,
    version: "9.9.9",
    startedAt: Date.now(),
    events,
    metrics,
    boot: () => boot,
    executor: withExecutor ? executor : null,
    exportDir: dir,
  });
  return Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: app.fetch });
}
const server = serve(false);
const withExecutor = serve(true);
const url = (p: string, s = server) => `http://127.0.0.1:${s.port}${p}`;
const auth = { Authorization: `Bearer ${TOKEN}` };
const get = (p: string, s = server) => fetch(url(p, s), { headers: auth });

beforeAll(async () => {
  events.record({ at: 1_000, type: "agent.start", message: "started" });
  events.record({ at: 2_000, type: "heartbeat.sent", message: "hb" });
  events.record({ at: 3_000, type: "heartbeat.failed", message: "hb failed", level: "warn" });
  events.record({ at: 4_000, type: "task.step", message: "clone", taskId: "t1" });
  events.flush();
  await monitor.tick();
  await monitor.tick();
});
afterAll(() => {
  server.stop(true);
  withExecutor.stop(true);
  events.close();
  metrics.close();
  rmSync(dir, { recursive: true, force: true });
});

async function expectError(res: Response, status: number, message?: RegExp) {
  expect(res.status).toBe(status);
  const body = await res.json();
  expect(v.is(ErrorBody, body)).toBe(true);
  if (message) expect(body.error.message).toMatch(message);
  return body;
}

const PROTECTED: [string, string][] = [
  ["GET", "/events"],
  ["GET", "/events/export"],
  ["GET", "/metrics"],
  ["GET", "/metrics/export"],
  ["GET", "/boot"],
  ["POST", "/tasks"],
  ["POST", "/tasks/batch"],
  ["GET", "/tasks/t1"],
  ["POST", "/tasks/t1/cancel"],
  ["GET", "/no-such-route"],
];

describe("agent server", () => {
  test("/health is open and says who and what it is", async () => {
    const res = await fetch(url("/health"));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true, version: "9.9.9", nodeId: "node-1" });
  });

  describe.each(PROTECTED)("%s %s", (method, path) => {
    test.each([
      ["no Authorization header", undefined, "missing_credentials"],
      ["a wrong token", `Bearer ${TOKEN}x`, "invalid_credentials"],
      ["another scheme", `Basic ${btoa(`x:${TOKEN}`)}`, "invalid_credentials"],
      ["a malformed bearer header", "Bearer", "invalid_credentials"],
      ["a token with spaces", `Bearer ${TOKEN} extra`, "invalid_credentials"],
      ["an empty header", "", "missing_credentials"],
    ])("%s is a 401 with the error shape, a code, and nothing leaked", async (_, header, code) => {
      const res = await fetch(url(path), { method, headers: header !== undefined ? { Authorization: header } : {} });
      const body = await expectError(res, 401);
      expect(body.error).toMatchObject({ type: "authentication_error", code });
      expect(res.headers.get("WWW-Authenticate")).toStartWith('Bearer realm="sam-agent"');
      expect(JSON.stringify(body)).not.toContain(TOKEN);
      expect(res.headers.get("content-type")).toContain("application/json");
    });
  });

  test("/events returns recorded events, filtered and paged", async () => {
    const all = await (await get("/events")).json();
    expect(all.data.map((e: { type: string }) => e.type)).toEqual([
      "agent.start",
      "heartbeat.sent",
      "heartbeat.failed",
      "task.step",
    ]);
    expect(all.nextCursor).toBeNull();
    const filtered = await (await get("/events?since=1970-01-01T00:00:02Z&until=4000&type=heartbeat.*&level=warn"))
      .json();
    expect(filtered.data.map((e: { message: string }) => e.message)).toEqual(["hb failed"]);
    expect((await (await get("/events?taskId=t1")).json()).data[0].message).toBe("clone");
    const page1 = await (await get("/events?limit=3")).json();
    expect(page1.data.length).toBe(3);
    const page2 = await (await get(`/events?limit=3&cursor=${page1.nextCursor}`)).json();
    expect(page2.data.map((e: { message: string }) => e.message)).toEqual(["clone"]);
  });

  test.each([
    ["/events?limit=-1", /^limit: limit must be an integer from 1 to 1000$/],
    ["/events?limit=0", /^limit: /],
    ["/events?limit=1001", /^limit: /],
    ["/events?limit=abc", /^limit: /],
    ["/events?since=yesterday", /^since: since must be epoch milliseconds or an ISO 8601 time$/],
    ["/events?until=2026-13-45", /^until: /],
    ["/events?level=fatal", /^level: level must be one of/],
    ["/events?cursor=-5", /^cursor: /],
    ["/events?taskId=../etc", /^taskId: /],
    ["/metrics?limit=0", /^limit: /],
    ["/metrics?since=%00", /^since: /],
  ])("bad query %s is a 400 naming the parameter", async (path, message) => {
    const body = await expectError(await get(path), 400, message);
    expect(body.error.code).toBe("invalid_query");
  });

  test("/metrics returns the samples oldest first", async () => {
    const { samples } = await (await get("/metrics")).json();
    expect(samples.length).toBe(2);
    expect(samples[0].at).toBeLessThanOrEqual(samples[1].at);
    expect(samples[0].disk.path).toBe("/");
  });

  test("/boot is 503 until the timeline is read, then the timeline", async () => {
    await expectError(await get("/boot"), 503, /still being read/);
    boot = { source: "none", kernelUptimeMsAtAgentStart: 5, agentStartedAt: 6, phases: [] };
    expect(await (await get("/boot")).json()).toEqual(boot);
  });

  test.each(["events", "metrics"])("/%s/export downloads a valid SQLite file and leaves no temp file", async (kind) => {
    const res = await get(`/${kind}/export`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/vnd.sqlite3");
    expect(res.headers.get("content-disposition")).toMatch(
      new RegExp(`^attachment; filename="${kind}-node-1-\\d{8}T\\d{6}Z\\.db"$`),
    );
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(Number(res.headers.get("content-length"))).toBe(bytes.length);
    const file = join(mkdtempSync(join(tmpdir(), "sam-dl-")), "x.db");
    writeFileSync(file, bytes);
    const table = kind === "events" ? "events" : "samples";
    const out = Bun.spawnSync(["sqlite3", file, "PRAGMA integrity_check; SELECT count(*) FROM " + table + ";"]).stdout
      .toString();
    expect(out.trim().split("\n")).toEqual(["ok", kind === "events" ? "4" : "2"]);
    rmSync(join(file, ".."), { recursive: true });
    expect(readdirSync(dir).filter((f) => f.startsWith(".export-"))).toEqual([]);
  });

  test("exports taken while 1,000 events/s are written are valid every time, and grow", async () => {
    let n = 0;
    const writer = setInterval(() => {
      for (let i = 0; i < 10; i++) events.record({ type: "task.output", message: `line ${n++}`, taskId: "t-burst" });
    }, 10);
    const counts: number[] = [];
    try {
      for (let round = 0; round < 5; round++) {
        const deadline = Date.now() + 150;
        while (Date.now() < deadline) await Bun.sleep(10);
        const res = await get("/events/export");
        const file = join(dir, `download-${round}.db`);
        writeFileSync(file, new Uint8Array(await res.arrayBuffer()));
        const out = Bun.spawnSync([
          "sqlite3",
          file,
          "PRAGMA integrity_check; SELECT count(*) FROM events WHERE task_id = 't-burst';",
        ]).stdout.toString().trim().split("\n");
        expect(out[0]).toBe("ok");
        counts.push(Number(out[1]));
        rmSync(file);
      }
    } finally {
      clearInterval(writer);
    }
    expect(n).toBeGreaterThan(500);
    for (let i = 1; i < counts.length; i++) expect(counts[i]!).toBeGreaterThan(counts[i - 1]!);
  }, 15_000);

  test("task routes without an executor answer 503 with a clear message", async () => {
    for (const [method, path] of [["POST", "/tasks"], ["GET", "/tasks/t1"], ["POST", "/tasks/t1/cancel"]] as const) {
      const res = await fetch(url(path), {
        method,
        headers: { ...auth, "Content-Type": "application/json" },
        body: method === "POST" ? "{}" : undefined,
      });
      await expectError(res, 503, /^this agent has no task executor$/);
    }
  });

  /** A valid dispatch of `taskId`, and a POST of a raw body to a task route of the agent with an executor. */
  const dispatchOf = (taskId: string) => ({
    taskId,
    prompt: "fix",
    agent: { type: "command", command: "true" },
    inference: { baseUrl: "http://127.0.0.1:1/v1", token: "x" },
    timeoutMs: 1000,
  });
  const postTo = (path: string) => (body: string) =>
    fetch(url(path, withExecutor), { method: "POST", headers: { ...auth, "Content-Type": "application/json" }, body });

  test("task routes validate the dispatch and delegate to the executor", async () => {
    const post = postTo("/tasks");
    const dispatch = dispatchOf("t-42");
    await expectError(await post("{nope"), 400, /not valid JSON/);
    await expectError(await post(JSON.stringify({ ...dispatch, taskId: "bad id" })), 400, /^taskId: /);
    await expectError(await post(JSON.stringify({ ...dispatch, timeoutMs: 0 })), 400, /^timeoutMs: /);
    const ok = await post(JSON.stringify(dispatch));
    expect(ok.status).toBe(202);
    expect(await ok.json()).toMatchObject({ taskId: "t-42", status: "running" });
    expect(dispatched.map((d) => d.taskId)).toEqual(["t-42"]);
    await expectError(await post(JSON.stringify(dispatch)), 409, /already/);
    expect((await (await get("/tasks/t-42", withExecutor)).json()).status).toBe("running");
    await expectError(await get("/tasks/t-43", withExecutor), 404, /no task t-43/);
    const cancel = await fetch(url("/tasks/t-42/cancel", withExecutor), { method: "POST", headers: auth });
    expect(await cancel.json()).toEqual({ cancelled: true });
  });

  test("a batch of dispatches: each task taken or refused on its own, in order, as POST /tasks would answer it", async () => {
    const post = postTo("/tasks/batch");
    const task = dispatchOf;
    // The batch itself must be one: a list of 1 to 64 tasks.
    await expectError(await post("{nope"), 400, /not valid JSON/);
    await expectError(await post(JSON.stringify({ tasks: [] })), 400, /^tasks: /);
    await expectError(await post(JSON.stringify({ tasks: Array(65).fill(task("t-x")) })), 400, /^tasks: /);
    const res = await post(JSON.stringify({
      tasks: [task("t-50"), { ...task("t-51"), timeoutMs: 0 }, task("t-50"), task("t-52")],
    }));
    expect(res.status).toBe(200);
    const { results } = (await res.json()) as { results: { status: number; body: unknown }[] };
    expect(results.map((r) => r.status)).toEqual([202, 400, 409, 202]);
    expect(results[0]!.body).toMatchObject({ taskId: "t-50", status: "running" });
    expect(v.parse(ErrorBody, results[1]!.body).error.message).toMatch(/^timeoutMs: /);
    expect(v.parse(ErrorBody, results[2]!.body).error.message).toMatch(/already/);
    expect(results[3]!.body).toMatchObject({ taskId: "t-52", status: "running" });
    expect(dispatched.map((d) => d.taskId).slice(-2)).toEqual(["t-50", "t-52"]);
    // An unexpected error is that task's 500, as POST /tasks answers it, and recorded in the event log.
    const single = await postTo("/tasks")(JSON.stringify(dispatchOf("t-boom")));
    const batch = await post(JSON.stringify({ tasks: [task("t-boom")] }));
    const [boom] = ((await batch.json()) as { results: { status: number; body: unknown }[] }).results;
    expect([single.status, boom!.status]).toEqual([500, 500]);
    expect(boom!.body).toEqual(await single.json());
    events.flush();
    expect(events.query({ type: "error", limit: 100 }).data.map((e) => e.message)).toContain(
      "POST /tasks/batch: the executor broke",
    );
  });
});
