/**
 * `POST /api/tasks` throughput at concurrency 32 (target ≥ 1,500 req/s on the `file:` database), with p50/p99
 * latency, on the `file:` database and on a real sqld, side by side. Each task lands on a warm node of the
 * key (an agent double holding it), so the event-driven placement and dispatch run during the measurement.
 *   node_modules/.bin/bun scripts/bench/edge-submit.ts [--requests 4000] [--concurrency 32]
 */
import { DoubleProvider, startTestEdge, until, type TestEdge } from "../../edge/testing/harness.ts";
import { startSqld } from "../../edge/testing/sqld.ts";
import { summary } from "./edge-stats.ts";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const REQUESTS = arg("requests", 4000);
const CONCURRENCY = arg("concurrency", 32);

async function run(label: string, env: Record<string, string>) {
  const provider = new DoubleProvider({ autoReady: true, double: { mode: "hold", capacity: 1_000_000 } });
  const t: TestEdge = await startTestEdge({ provider, env });
  try {
    const key = await t.createKey();
    const node = await (await t.call("POST", "/api/nodes", { body: { ownerKeyId: key.id } })).json();
    await until("node ready", async () => (await (await t.call("GET", `/api/nodes/${node.id}`)).json()).status === "ready");
    const body = JSON.stringify({ prompt: "bench", agent: { type: "command", command: "true" } });
    const headers = { Authorization: `Bearer ${key.key}`, "Content-Type": "application/json" };
    const latencies: number[] = [];
    let next = 0;
    let errors = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < REQUESTS) {
        next++;
        const t0 = performance.now();
        const res = await fetch(`${t.url}/api/tasks`, { method: "POST", headers, body });
        await res.arrayBuffer();
        if (res.status !== 201) errors++;
        latencies.push(performance.now() - t0);
      }
    }));
    const seconds = (performance.now() - started) / 1000;
    await t.edge.runner.idle();
    const s = summary(latencies);
    console.log(`${label.padEnd(6)} ${String(Math.round(REQUESTS / seconds)).padStart(6)} req/s  p50 ${s.p50.toFixed(1)} ms  p99 ${s.p99.toFixed(1)} ms  errors ${errors}  dispatched ${provider.agents.get(node.id)!.dispatches.length}/${REQUESTS}`);
    return REQUESTS / seconds;
  } finally {
    await t.stop();
  }
}

console.log(`POST /api/tasks, ${REQUESTS} requests at concurrency ${CONCURRENCY}`);
const file = await run("file:", {});
const sqld = await startSqld();
try {
  const remote = await run("sqld", { SAM_DATABASE_URL: sqld.url });
  console.log(`ratio file:/sqld ${(file / remote).toFixed(2)}`);
} finally {
  await sqld.stop();
}
