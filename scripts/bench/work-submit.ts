/**
 * Benchmark: submit-to-running latency on a warm local node — `POST /api/tasks` until the task is
 * `running` — next to its floor, the agent accepting the same kind of dispatch directly (`POST /tasks` on the
 * node with the agent token). Real edge (in-process, served over HTTP), real agent binary, local provider.
 *
 *   node_modules/.bin/bun scripts/bench/work-submit.ts [--runs 30]
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { NodeView, TaskView } from "../../shared/wire/api.ts";
import { until } from "../../shared/testing/until.ts";
import { startTestEdge } from "../../edge/testing/test-edge.ts";

const runs = Number(process.argv[process.argv.indexOf("--runs") + 1] || 30) || 30;
const root = join(import.meta.dir, "..", "..");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)]!;

const edge = await startTestEdge({
  env: { SAM_AGENT_BINARY: join(root, "agent", "dist", "sam-agent"), SAM_HEARTBEAT_INTERVAL: "2s" },
});
try {
  const { key } = await edge.createKey("bench", 1_000_000);
  const finished = (id: string) =>
    until(`task ${id}`, async () => {
      const v = (await (await edge.call("GET", `/api/tasks/${id}`, { token: key })).json()) as TaskView;
      return ["succeeded", "failed", "cancelled"].includes(v.status) ? v : undefined;
    }, 60_000);
  const submit = async () =>
    (await (await edge.call("POST", "/api/tasks", {
      token: key,
      body: { prompt: "bench", agent: { type: "command", command: "true" } },
    })).json()) as TaskView;

  // Warm-up: the first task boots the node.
  const first = await finished((await submit()).id);
  const node = (await (await edge.call("GET", `/api/nodes/${first.nodeId}`)).json()) as NodeView;
  const tokens = readFileSync(join(edge.dataDir, "nodes", node.id, "tokens"), "utf8");
  const agentToken = /SAM_AGENT_TOKEN=(.*)/.exec(tokens)![1]!.trim();

  const viaEdge: number[] = [];
  const clientSeen: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const task = await submit();
    // What a user sees: poll-free, by following the task's SSE until `running` shows up.
    const res = await fetch(`${edge.url}/api/tasks/${task.id}/events?follow=1`, {
      headers: { Authorization: `Bearer ${key}` },
    });
    const reader = res.body!.getReader();
    let text = "";
    while (!/"status":"running"/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    clientSeen.push(performance.now() - t0);
    await reader.cancel();
    const done = await finished(task.id);
    const running = done.transitions.find((t) => t.status === "running")!;
    viaEdge.push(running.at - done.createdAt);
  }

  const direct: number[] = [];
  for (let i = 0; i < runs; i++) {
    const taskId = `bench-direct-${Date.now()}-${i}`;
    const t0 = performance.now();
    const res = await fetch(`${node.agentUrl}/tasks`, {
      method: "POST",
      headers: { Authorization: `Bearer ${agentToken}`, "Content-Type": "application/json" },
      body: JSON.stringify({
        taskId,
        prompt: "bench",
        agent: { type: "command", command: "true" },
        inference: { baseUrl: `${edge.url}/v1`, token: "x" },
        timeoutMs: 60_000,
      }),
    });
    await res.arrayBuffer();
    direct.push(performance.now() - t0);
    if (res.status !== 202) throw new Error(`direct dispatch answered ${res.status}`);
    // One at a time, like the edge-side runs: wait for it to end before the next.
    await until(`direct task ${taskId}`, async () => {
      const s = await fetch(`${node.agentUrl}/tasks/${taskId}`, { headers: { Authorization: `Bearer ${agentToken}` } });
      return ((await s.json()) as { status: string }).status !== "running";
    }, 30_000);
  }

  const row = (name: string, xs: number[]) =>
    console.log(
      `${name.padEnd(44)} p50 ${median(xs).toFixed(1).padStart(6)} ms   p90 ${p90(xs).toFixed(1).padStart(6)} ms`,
    );
  console.log(`submit-to-running on a warm local node, ${runs} runs each (loaded, shared machine)`);
  row("edge-recorded (createdAt → running)", viaEdge);
  row("client-observed (POST → SSE shows running)", clientSeen);
  row("baseline: agent accepts a dispatch directly", direct);
  console.log(
    `ratio edge-recorded / baseline p50: ${(median(viaEdge) / median(direct)).toFixed(1)}×   target p50 ≤ 100 ms: ${
      median(clientSeen) <= 100 ? "met" : "NOT met"
    }`,
  );
} finally {
  await edge.stop();
}
