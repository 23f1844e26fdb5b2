// A burst's dispatches to one node go to its agent as one `POST /tasks/batch` when the agent says it takes
// batches; an agent that does not say so, or does not know the route, gets one `POST /tasks` per task. Either
// way every task reaches running. Through the edge's HTTP door, with agent doubles that record their calls.
// (Under Deno on sqld, edge/tasks/submissions.deno-test.ts sends its burst through this path.)
import { afterAll, describe, expect, test } from "bun:test";
import { until } from "../../shared/testing/until.ts";
import type { AgentDoubleOptions } from "../testing/agent-double.ts";
import { ProviderDouble } from "../testing/provider-double.ts";
import { readyNode, startTestEdge, type TestEdge } from "../testing/test-edge.ts";

const BURST = 6;
const edges: TestEdge[] = [];
afterAll(async () => {
  for (const t of edges) await t.stop();
});

async function burstTo(double: Partial<AgentDoubleOptions>, prompt = (i: number) => `task ${i}`, count = BURST) {
  const provider = new ProviderDouble({ double: { mode: "hold", capacity: count, ...double } });
  const t = await startTestEdge({ provider, env: { SAM_RATE_LIMIT_RPM: "1000000" } });
  edges.push(t);
  const key = await t.createKey();
  const node = await readyNode(t, provider, key.id);
  const ids = await Promise.all(Array.from({ length: count }, async (_, i) => {
    const res = await t.call("POST", "/api/tasks", {
      token: key.key,
      body: { prompt: prompt(i), agent: { type: "command", command: "true" } },
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }));
  const status = async (id: string) =>
    ((await (await t.call("GET", `/api/tasks/${id}`)).json()) as { status: string }).status;
  await until("every task running", async () => (await Promise.all(ids.map(status))).every((s) => s === "running"));
  return { agent: node.agent, ids };
}

describe("dispatches to one node", () => {
  test("a burst goes as batches to an agent that takes them: every task once, fewer calls than tasks", async () => {
    const { agent, ids } = await burstTo({});
    expect(agent.batchCalls.length).toBeGreaterThan(0);
    expect(agent.batchCalls.length).toBeLessThan(BURST);
    expect(agent.dispatches.map((d) => d.taskId).sort()).toEqual([...ids].sort());
    // Whatever went alone (a dispatch with no company in its turn) and what went in batches add up to the burst.
    expect(agent.batchCalls.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(BURST);
  });

  test("a batch stays within half the agent's body limit, counted in UTF-8 bytes", async () => {
    // Eight prompts of 100,000 three-byte characters: 300 KB each, 2.4 MB for all — within 2 MiB as characters
    // (800,000), not as bytes, so they go as more than one batch.
    const { agent, ids } = await burstTo({}, (i) => `${i}${"€".repeat(99_999)}`, 8);
    expect(agent.dispatches.map((d) => d.taskId).sort()).toEqual([...ids].sort());
    expect(agent.batchCalls.every((n) => n * 300_000 <= 2 * 1024 * 1024)).toBe(true);
    expect(agent.batchCalls.length).toBeGreaterThan(0);
  });

  test("an agent that does not report batches gets one POST /tasks per task", async () => {
    const { agent, ids } = await burstTo({ batchDispatch: false });
    expect(agent.batchCalls).toEqual([]);
    expect(agent.dispatches.map((d) => d.taskId).sort()).toEqual([...ids].sort());
  });

  test("an agent that reports batches but answers the route 404 gets its tasks one by one", async () => {
    const { agent, ids } = await burstTo({ batchDispatch: 404 });
    expect(agent.batchCalls.length).toBeGreaterThan(0);
    expect(agent.batchCalls.every((n) => n === 0)).toBe(true);
    expect(agent.dispatches.map((d) => d.taskId).sort()).toEqual([...ids].sort());
  });
});
