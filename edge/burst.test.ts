// Cold bursts under the node cap: 200 concurrent submissions with no node up, from one key and from 20, on one
// edge and on two sharing a real sqld. The cap is a database invariant, so it holds across instances; tasks
// beyond it wait queued and are placed as nodes free up (no tick runs here, so that placement is event-driven).
import { afterAll, describe, expect, test } from "bun:test";
import { ProviderDouble } from "./testing/provider-double.ts";
import { startTestEdge, type TestEdge } from "./testing/test-edge.ts";
import { startSqld } from "./testing/sqld.ts";

const MAX_NODES = 5;
const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function burst(edgeCount: 1 | 2, keyCount: 1 | 20): Promise<void> {
  const sqld = edgeCount === 2 ? await startSqld() : null;
  if (sqld) cleanup.push(() => sqld.stop());
  // Instances of one database share its secret key; a burst of 200 from one key is above the default
  // per-key submission limit, which is not what this test is about.
  const env: Record<string, string> = {
    SAM_MAX_NODES: String(MAX_NODES),
    SAM_SECRET_KEY: "5a".repeat(32),
    SAM_RATE_LIMIT_RPM: "1000000",
    ...(sqld ? { SAM_DATABASE_URL: sqld.url } : {}),
  };
  // One cloud account behind both instances: either may delete a server the other created.
  const provider = new ProviderDouble({ autoReady: true, double: { capacity: 4 } });
  const edges: TestEdge[] = [];
  for (let e = 0; e < edgeCount; e++) edges.push(await startTestEdge({ provider, env }));
  cleanup.push(...edges.map((e) => () => e.stop()));
  const keys: { id: string; key: string }[] = [];
  for (let k = 0; k < keyCount; k++) keys.push(await edges[0]!.createKey(`key-${k}`));

  // Sample the live nodes (rows counting against the cap, and servers the providers really have) throughout.
  let most = { rows: 0, servers: 0 };
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const r = await edges[0]!.edge.db.execute(
        "SELECT COUNT(*) AS n FROM nodes WHERE status IN ('provisioning','booting','ready','draining')",
      );
      const servers = (await provider.list()).length;
      most = { rows: Math.max(most.rows, Number(r.rows[0]!.n)), servers: Math.max(most.servers, servers) };
      await new Promise((r) => setTimeout(r, 2));
    }
  })();

  const ids = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
    const edge = edges[i % edgeCount]!;
    const key = keys[i % keyCount]!;
    const res = await edge.call("POST", "/api/tasks", {
      token: key.key,
      body: { prompt: `task ${i}`, agent: { type: "command", command: "true" } },
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }));

  const deadline = Date.now() + 80_000;
  let counts: Record<string, number> = {};
  while (Date.now() < deadline) {
    const r = await edges[0]!.edge.db.execute("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status");
    counts = Object.fromEntries(r.rows.map((x) => [String(x.status), Number(x.n)]));
    if (counts.succeeded === 200) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  sampling = false;
  await sampler;
  expect(counts).toEqual({ succeeded: 200 });
  expect(most.rows).toBeLessThanOrEqual(MAX_NODES);
  expect(most.servers).toBeLessThanOrEqual(MAX_NODES);
  expect(most.rows).toBeGreaterThan(1); // the burst did need several nodes: the cap was what held it

  const perTask = new Map<string, number>();
  for (const agent of provider.agents.values()) {
    for (const d of agent.dispatches) perTask.set(d.taskId, (perTask.get(d.taskId) ?? 0) + 1);
  }
  expect([...perTask.keys()].sort()).toEqual([...ids].sort());
  expect([...perTask.values()].filter((n) => n !== 1)).toEqual([]);
}

describe(`cold bursts under SAM_MAX_NODES=${MAX_NODES}`, () => {
  test("one edge, one key: 200 concurrent submissions", () => burst(1, 1), 120_000);
  test("one edge, 20 keys: 200 concurrent submissions", () => burst(1, 20), 120_000);
  test("two edges on one sqld, one key: 200 concurrent submissions", () => burst(2, 1), 120_000);
  test("two edges on one sqld, 20 keys: 200 concurrent submissions", () => burst(2, 20), 120_000);
});
