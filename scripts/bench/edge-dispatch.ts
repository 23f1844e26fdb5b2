/**
 * Dispatch latency: from the agent's ready callback to the task reaching the node (`POST /tasks` at the
 * agent). Target p50 ≤ 20 ms; the anchor (a poller every 5 s) has an expected median of 2,500 ms, and is run
 * here side by side: the same edge with event-driven dispatch off, its tick every 5 s doing the dispatch.
 *   node_modules/.bin/bun scripts/bench/edge-dispatch.ts [--runs 50] [--anchor-runs 4]
 */
import { until } from "../../shared/testing/until.ts";
import { ProviderDouble } from "../../edge/testing/provider-double.ts";
import { startTestEdge } from "../../edge/testing/test-edge.ts";
import { summary } from "./edge-stats.ts";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};

async function measure(runs: number, pollMs: number | null): Promise<number[]> {
  const provider = new ProviderDouble({ autoReady: false });
  const t = await startTestEdge({ provider, env: { SAM_MAX_NODES: "1000" } });
  // The anchor: the ready callback no longer dispatches; a poller every 5 s dispatches for every ready node.
  const runner = t.edge.runner;
  const dispatchFor = runner.nodeReady.bind(runner);
  if (pollMs !== null) runner.nodeReady = async () => {};
  const interval = pollMs === null ? null : setInterval(async () => {
    const nodes = (await (await t.call("GET", "/api/nodes?limit=500")).json()).data as { id: string; status: string }[];
    for (const n of nodes) if (n.status === "ready") await dispatchFor(n.id);
  }, pollMs);
  const out: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const key = await t.createKey(`k${i}`);
      const task = await (await t.call("POST", "/api/tasks", { token: key.key, body: { prompt: "p" } })).json();
      await t.edge.runner.idle();
      const nodeId = (await (await t.call("GET", `/api/tasks/${task.id}`)).json()).nodeId;
      const agent = provider.agents.get(nodeId)!;
      const t0 = performance.now();
      await agent.ready();
      await until("dispatch", () => agent.dispatches.length > 0, 20_000);
      out.push(performance.now() - t0);
    }
  } finally {
    if (interval) clearInterval(interval);
    await t.stop();
  }
  return out;
}

const event = summary(await measure(arg("runs", 50), null));
const anchor = summary(await measure(arg("anchor-runs", 4), 5_000));
console.log(
  `event-driven  n=${event.n}  p50 ${event.p50.toFixed(1)} ms  p90 ${event.p90.toFixed(1)} ms  p99 ${
    event.p99.toFixed(1)
  } ms`,
);
console.log(`5 s poller    n=${anchor.n}  p50 ${anchor.p50.toFixed(0)} ms  p90 ${anchor.p90.toFixed(0)} ms`);
console.log(`ratio (p50)   ${(anchor.p50 / event.p50).toFixed(0)}x`);
