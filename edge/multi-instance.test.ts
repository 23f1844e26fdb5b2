// Two edge instances against one real sqld: 200 concurrent submissions, every task dispatched exactly once.
import { afterAll, describe, expect, test } from "bun:test";
import { until } from "../shared/testing/until.ts";
import { ProviderDouble } from "./testing/provider-double.ts";
import { startTestEdge, type TestEdge } from "./testing/test-edge.ts";
import { startSqld } from "./testing/sqld.ts";

const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

describe("two edge instances, one sqld", () => {
  test("200 concurrent submissions across both instances: each task is dispatched exactly once", async () => {
    const sqld = await startSqld();
    cleanup.push(() => sqld.stop());
    // Instances sharing a database share its secret key (each would otherwise generate its own).
    // The burst is the point here, not the per-key submission limit.
    const env = {
      SAM_DATABASE_URL: sqld.url,
      SAM_MAX_NODES: "1",
      SAM_SECRET_KEY: "5a".repeat(32),
      SAM_RATE_LIMIT_RPM: "1000000",
    };
    const providerA = new ProviderDouble({ autoReady: true, double: { mode: "hold", capacity: 1000 } });
    // Both start together: concurrent migrations must be safe too.
    const [a, b] = await Promise.all([
      startTestEdge({ provider: providerA, env }),
      startTestEdge({ provider: new ProviderDouble(), env }),
    ]) as [TestEdge, TestEdge];
    cleanup.push(() => a.stop(), () => b.stop());
    const key = await a.createKey();
    const node = await (await a.call("POST", "/api/nodes", { body: { ownerKeyId: key.id } })).json();
    await until(
      "node ready",
      async () => (await (await b.call("GET", `/api/nodes/${node.id}`)).json()).status === "ready",
    );

    const ids = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      const edge = i % 2 === 0 ? a : b;
      const res = await edge.call("POST", "/api/tasks", {
        token: key.key,
        body: { prompt: `task ${i}`, agent: { type: "command", command: "true" } },
      });
      expect(res.status).toBe(201);
      return ((await res.json()) as { id: string }).id;
    }));
    // Both instances' safety nets run at the same time as the event-driven dispatch.
    await Promise.all([a.edge.tick(), b.edge.tick(), a.edge.runner.idle(), b.edge.runner.idle()]);
    const agent = providerA.agents.get(node.id)!;
    // A write that failed under load (sqld busy, a reset connection) is what the tick exists for: keep it running.
    await until("all dispatched", async () => {
      if (new Set(agent.dispatches.map((d) => d.taskId)).size === 200) return true;
      await Promise.all([a.edge.tick(), b.edge.tick()]);
      return false;
    }, 30_000);
    await Promise.all([a.edge.tick(), b.edge.tick()]);
    await Promise.all([a.edge.runner.idle(), b.edge.runner.idle()]);

    const perTask = new Map<string, number>();
    for (const d of agent.dispatches) perTask.set(d.taskId, (perTask.get(d.taskId) ?? 0) + 1);
    expect([...perTask.keys()].sort()).toEqual([...ids].sort());
    expect([...perTask.values()].every((n) => n === 1)).toBe(true);
    const r = await a.edge.db.execute("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status");
    expect(r.rows.map((x) => [x.status, Number(x.n)])).toEqual([["running", 200]]);
    const nodes = await a.edge.db.execute("SELECT COUNT(*) AS n FROM nodes");
    expect(Number(nodes.rows[0]!.n)).toBe(1);
  }, 60_000);
});
