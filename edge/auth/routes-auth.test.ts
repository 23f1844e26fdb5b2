// Table-driven: every route of the edge against every kind of wrong credential.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { until } from "../../shared/testing/until.ts";
import { ProviderDouble } from "../testing/provider-double.ts";
import { startTestEdge, type TestEdge } from "../testing/test-edge.ts";

let t: TestEdge;
let provider: ProviderDouble;
let key: string;
let nodeA: string;
let nodeB: string;
let tokenA: string;
let tokenB: string;
let taskB: string;
let taskToken: string;

beforeAll(async () => {
  provider = new ProviderDouble({ autoReady: true, double: { mode: "hold", capacity: 4 } });
  t = await startTestEdge({ provider });
  const k = await t.createKey("alice");
  key = k.key;
  nodeA = (await (await t.call("POST", "/api/nodes", { body: {} })).json()).id;
  const task = await (await t.call("POST", "/api/tasks", {
    token: key,
    body: { prompt: "p", agent: { type: "command", command: "true" } },
  })).json();
  taskB = task.id;
  const running = await until("running", async () => {
    const v = await (await t.call("GET", `/api/tasks/${taskB}`)).json();
    return v.status === "running" ? v : undefined;
  });
  // The task went to the warm node A (claimed by alice) — use a second node for B.
  nodeB = running.nodeId;
  if (nodeB === nodeA) nodeA = (await (await t.call("POST", "/api/nodes", { body: {} })).json()).id;
  await until("both servers", () => provider.inputs.has(nodeA) && provider.inputs.has(nodeB));
  tokenA = provider.inputs.get(nodeA)!.nodeToken;
  tokenB = provider.inputs.get(nodeB)!.nodeToken;
  taskToken = provider.agents.get(nodeB)!.dispatches[0]!.inference.token;
});
afterAll(async () => {
  await t.stop();
});

type Route = { method: string; path: () => string; kinds: ("admin" | "key" | "node")[] };
const routes: Route[] = [
  { method: "GET", path: () => "/api/config", kinds: ["admin"] },
  { method: "POST", path: () => "/api/keys", kinds: ["admin"] },
  { method: "GET", path: () => "/api/keys", kinds: ["admin"] },
  { method: "GET", path: () => "/api/keys/key_x", kinds: ["admin"] },
  { method: "DELETE", path: () => "/api/keys/key_x", kinds: ["admin"] },
  { method: "GET", path: () => "/api/sessions", kinds: ["admin"] },
  { method: "DELETE", path: () => "/api/sessions/ses_x", kinds: ["admin"] },
  { method: "GET", path: () => "/api/nodes", kinds: ["admin"] },
  { method: "POST", path: () => "/api/nodes", kinds: ["admin"] },
  { method: "GET", path: () => `/api/nodes/${nodeB}`, kinds: ["admin"] },
  { method: "DELETE", path: () => `/api/nodes/${nodeB}`, kinds: ["admin"] },
  { method: "GET", path: () => `/api/nodes/${nodeB}/metrics`, kinds: ["admin"] },
  { method: "GET", path: () => `/api/nodes/${nodeB}/events`, kinds: ["admin"] },
  { method: "GET", path: () => `/api/nodes/${nodeB}/boot`, kinds: ["admin"] },
  { method: "GET", path: () => `/api/nodes/${nodeB}/events/export`, kinds: ["admin"] },
  { method: "GET", path: () => `/api/nodes/${nodeB}/metrics/export`, kinds: ["admin"] },
  { method: "POST", path: () => "/api/tasks", kinds: ["key", "admin"] },
  { method: "GET", path: () => "/api/tasks", kinds: ["key", "admin"] },
  { method: "GET", path: () => `/api/tasks/${taskB}`, kinds: ["key", "admin"] },
  { method: "GET", path: () => `/api/tasks/${taskB}/events`, kinds: ["key", "admin"] },
  { method: "POST", path: () => `/api/tasks/${taskB}/cancel`, kinds: ["key", "admin"] },
  { method: "POST", path: () => "/api/agent/ready", kinds: ["node"] },
  { method: "POST", path: () => "/api/agent/heartbeat", kinds: ["node"] },
  { method: "POST", path: () => `/api/agent/tasks/${taskB}/events`, kinds: ["node"] },
  { method: "POST", path: () => `/api/agent/tasks/${taskB}/result`, kinds: ["node"] },
];

async function expectError(res: Response, status: number) {
  expect(res.status).toBe(status);
  const body = await res.json();
  expect(Object.keys(body)).toEqual(["error"]);
  expect(typeof body.error.message).toBe("string");
}

describe("auth on every route", () => {
  for (const r of routes) {
    test(`${r.method} ${r.path.toString().replace(/^\(\) => /, "")}: no token and garbage are 401; wrong kinds are 403`, async () => {
      const path = r.path();
      const body = r.method === "GET" ? undefined : {};
      await expectError(await t.call(r.method, path, { token: null, body }), 401);
      await expectError(await t.call(r.method, path, { token: "garbage-token", body }), 401);
      await expectError(
        await t.call(r.method, path, { token: "sam_notARealKey0000000000000000000000000000", body }),
        401,
      );
      if (!r.kinds.includes("key")) await expectError(await t.call(r.method, path, { token: key, body }), 403);
      if (!r.kinds.includes("node")) await expectError(await t.call(r.method, path, { token: tokenB, body }), 403);
      if (!r.kinds.includes("admin")) await expectError(await t.call(r.method, path, { body }), 403);
      // A task inference token works on /v1/* only.
      await expectError(await t.call(r.method, path, { token: taskToken, body }), 403);
    });
  }

  test("node A's token on node B's callbacks is a 403, and nothing changes", async () => {
    const asA = (path: string, body: unknown) => t.call("POST", path, { token: tokenA, body });
    const ready = {
      nodeId: nodeB,
      version: "x",
      url: "http://127.0.0.1:1",
      bootTimeline: { source: "none", kernelUptimeMsAtAgentStart: null, agentStartedAt: 1, phases: [] },
      capabilities: { workspaceModes: ["host"], agents: ["command"], maxConcurrentTasks: 1, arch: "x", os: "y" },
      startedAt: 1,
    };
    await expectError(await asA("/api/agent/ready", ready), 403);
    await expectError(await asA("/api/agent/heartbeat", { nodeId: nodeB, at: 1, uptimeMs: 1, activeTasks: [] }), 403);
    await expectError(
      await asA(`/api/agent/tasks/${taskB}/events`, {
        events: [{ seq: 0, at: 1, stream: "stdout", message: "forged" }],
      }),
      403,
    );
    await expectError(
      await asA(`/api/agent/tasks/${taskB}/result`, { status: "succeeded", exitCode: 0, finishedAt: 1 }),
      403,
    );
    const task = await (await t.call("GET", `/api/tasks/${taskB}`)).json();
    expect(task.status).toBe("running");
    const events = await (await t.call("GET", `/api/tasks/${taskB}/events`)).json();
    expect(events.data.some((e: { message: string }) => e.message === "forged")).toBe(false);
    const node = await (await t.call("GET", `/api/nodes/${nodeB}`)).json();
    expect(node.agentUrl).not.toBe("http://127.0.0.1:1");
  });

  test("a revoked key stops working at once", async () => {
    const k = await t.createKey("temp");
    expect((await t.call("GET", "/api/tasks", { token: k.key })).status).toBe(200);
    expect((await t.call("DELETE", `/api/keys/${k.id}`)).status).toBe(200);
    await expectError(await t.call("GET", "/api/tasks", { token: k.key }), 401);
  });
});
