/**
 * Benchmark: latency from a command's stdout on the node to a `curl -N` client following the task's
 * events (`GET /api/tasks/:id/events?follow=1`), next to its floor: the same command's stdout read straight
 * from a pipe. The command prints its own clock (µs), so each line measures itself.
 *
 *   node_modules/.bin/bun scripts/bench/work-stream.ts [--lines 60]
 */
import { join } from "node:path";
import type { TaskView } from "../../shared/wire/api.ts";
import { until } from "../../shared/testing/until.ts";
import { startTestEdge } from "../../edge/testing/test-edge.ts";

const lines = Number(process.argv[process.argv.indexOf("--lines") + 1] || 60) || 60;
const root = join(import.meta.dir, "..", "..");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)]!;
const nowUs = () => (performance.timeOrigin + performance.now()) * 1000;
// Lines 30 ms apart: each is its own event, as a coding agent's progress lines are.
const command = `for i in $(seq 1 ${lines}); do echo "t=$(date +%s%6N)"; sleep 0.03; done`;

/** Read lines of `t=<µs>` from a stream, returning each line's latency in ms. */
async function measure(stream: ReadableStream<Uint8Array>, pattern: RegExp, count: number): Promise<number[]> {
  const out: number[] = [];
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of stream) {
    const arrived = nowUs();
    buf += decoder.decode(chunk, { stream: true });
    let m: RegExpExecArray | null;
    while ((m = pattern.exec(buf))) {
      out.push((arrived - Number(m[1])) / 1000);
      buf = buf.slice(m.index + m[0].length);
    }
    if (out.length >= count) break;
  }
  return out;
}

const pipe = Bun.spawn(["sh", "-c", command], { stdout: "pipe" });
const floor = await measure(pipe.stdout, /t=(\d+)/, lines);
await pipe.exited;

const edge = await startTestEdge({
  env: { SAM_AGENT_BINARY: join(root, "agent", "dist", "sam-agent"), SAM_HEARTBEAT_INTERVAL: "2s" },
});
try {
  const { key } = await edge.createKey("bench", 1_000_000);
  const submit = async (cmd: string) =>
    (await (await edge.call("POST", "/api/tasks", {
      token: key,
      body: { prompt: "bench", agent: { type: "command", command: cmd } },
    })).json()) as TaskView;
  const finished = (id: string) =>
    until(`task ${id}`, async () => {
      const v = (await (await edge.call("GET", `/api/tasks/${id}`, { token: key })).json()) as TaskView;
      return ["succeeded", "failed", "cancelled"].includes(v.status) ? v : undefined;
    }, 60_000);
  await finished((await submit("true")).id); // warm the node

  const task = await submit(command);
  // The client is curl itself, as a user would run it.
  const curl = Bun.spawn([
    "curl",
    "-sN",
    "-H",
    `Authorization: Bearer ${key}`,
    `${edge.url}/api/tasks/${task.id}/events?follow=1`,
  ], { stdout: "pipe" });
  const viaEdge = await measure(curl.stdout, /t=(\d+)/, lines);
  curl.kill();
  await finished(task.id);

  const row = (name: string, xs: number[]) =>
    console.log(
      `${name.padEnd(40)} p50 ${median(xs).toFixed(2).padStart(7)} ms   p90 ${
        p90(xs).toFixed(2).padStart(7)
      } ms   (${xs.length} lines)`,
    );
  console.log("stdout → client latency (loaded, shared machine)");
  row("stdout → agent → edge → curl -N (SSE)", viaEdge);
  row("baseline: stdout → pipe reader", floor);
  console.log(
    `ratio p50: ${(median(viaEdge) / Math.max(0.01, median(floor))).toFixed(1)}×   target p50 ≤ 50 ms: ${
      median(viaEdge) <= 50 ? "met" : "NOT met"
    }`,
  );
} finally {
  await edge.stop();
}
