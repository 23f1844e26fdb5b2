// Malformed JSON, wrong types, unknown fields and oversized bodies: a 4xx in the JSON error shape, and nothing written.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as v from "valibot";
import { ErrorBody } from "../shared/errors.ts";
import { ProviderDouble } from "./testing/provider-double.ts";
import { startTestEdge, type TestEdge } from "./testing/test-edge.ts";

let t: TestEdge;
let key: string;
let nodeToken: string;
let nodeId = "";

beforeAll(async () => {
  const provider = new ProviderDouble();
  t = await startTestEdge({ provider });
  key = (await t.createKey()).key;
  nodeId = (await (await t.call("POST", "/api/nodes", { body: {} })).json()).id;
  await t.edge.runner.idle();
  nodeToken = provider.inputs.get(nodeId)!.nodeToken;
});
afterAll(async () => {
  await t.stop();
});

async function counts() {
  const r = await t.edge.db.execute(
    `SELECT (SELECT COUNT(*) FROM tasks) AS tasks, (SELECT COUNT(*) FROM api_keys) AS keys,
    (SELECT COUNT(*) FROM nodes) AS nodes, (SELECT COUNT(*) FROM task_events) AS events, (SELECT agent_url FROM nodes WHERE id = '${nodeId}') AS url`,
  );
  return r.rows[0];
}

const TEN_MB = "x".repeat(10 * 1024 * 1024);
const huge = JSON.stringify({ prompt: TEN_MB });

type Case = [string, string, () => string, { raw?: string; body?: unknown }, number];
const cases: Case[] = [
  ["malformed JSON task", "POST", () => "/api/tasks", { raw: "{prompt:" }, 400],
  ["empty body task", "POST", () => "/api/tasks", { raw: "" }, 400],
  ["wrong type prompt", "POST", () => "/api/tasks", { body: { prompt: 42 } }, 400],
  ["unknown field", "POST", () => "/api/tasks", { body: { prompt: "x", promt: "typo" } }, 400],
  ["array body", "POST", () => "/api/tasks", { body: [{ prompt: "x" }] }, 400],
  ["10 MB task", "POST", () => "/api/tasks", { raw: huge }, 413],
  ["bad key", "POST", () => "/api/keys", { body: { name: "" } }, 400],
  ["key unknown field", "POST", () => "/api/keys", { body: { name: "a", admin: true } }, 400],
  ["key wrong type", "POST", () => "/api/keys", { body: { name: "a", rateLimitPerMinute: "lots" } }, 400],
  ["10 MB key", "POST", () => "/api/keys", { raw: JSON.stringify({ name: TEN_MB }) }, 413],
  ["warm node unknown field", "POST", () => "/api/nodes", { body: { size: "xl" } }, 400],
  ["warm node for a missing key", "POST", () => "/api/nodes", { body: { ownerKeyId: "key_nope" } }, 400],
  ["malformed ready", "POST", () => "/api/agent/ready", { raw: "not json" }, 400],
  ["ready with wrong types", "POST", () => "/api/agent/ready", { body: { nodeId, version: 1, url: "nope" } }, 400],
  ["heartbeat wrong types", "POST", () => "/api/agent/heartbeat", {
    body: { nodeId, at: "now", uptimeMs: -1, activeTasks: "x" },
  }, 400],
  ["10 MB heartbeat", "POST", () => "/api/agent/heartbeat", { raw: huge }, 413],
  ["heartbeat listing 1001 tasks", "POST", () => "/api/agent/heartbeat", {
    body: { nodeId, at: 1, uptimeMs: 1, activeTasks: Array.from({ length: 1001 }, (_, i) => `task_${i}`) },
  }, 400],
];

describe("bad input", () => {
  for (const [name, method, path, opts, status] of cases) {
    test(`${name} → ${status}, nothing written`, async () => {
      const before = await counts();
      const token = path().startsWith("/api/agent") ? nodeToken : path() === "/api/tasks" ? key : undefined;
      const res = await t.call(method, path(), {
        ...opts,
        token,
        headers: opts.raw !== undefined ? { "Content-Type": "application/json" } : {},
      });
      expect(res.status).toBe(status);
      const body = v.parse(ErrorBody, await res.json());
      expect(body.error.message.length).toBeGreaterThan(0);
      expect(body.error.message).not.toContain("at ");
      await t.edge.runner.idle();
      expect(await counts()).toEqual(before);
    });
  }

  test("a bad query is a 400 naming the parameter", async () => {
    const res = await t.call("GET", "/api/tasks?status=done", { token: key });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toMatch(/^status: /);
    expect((await t.call("GET", "/api/tasks?limit=abc", { token: key })).status).toBe(400);
    expect((await t.call("GET", "/api/tasks?cursor=';DROP", { token: key })).status).toBe(400);
  });

  test("unknown task and node ids are 404s", async () => {
    expect((await t.call("GET", "/api/tasks/t_nope", { token: key })).status).toBe(404);
    expect((await t.call("GET", "/api/nodes/n-nope")).status).toBe(404);
    expect(
      (await t.call("POST", "/api/agent/tasks/t_nope/result", {
        token: nodeToken,
        body: { status: "succeeded", exitCode: 0, finishedAt: 1 },
      })).status,
    ).toBe(404);
  });
});
