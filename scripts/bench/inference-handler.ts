/**
 * SAM's inference handler alone: `app.fetch` in-process with an instant stub upstream `fetch`, so
 * only SAM's own work per request is measured — no sockets, no server. Steady enough on a busy machine to
 * steer micro-optimisations; the served path is measured by `inference-bisect.ts` and `inference-overhead.ts`.
 *
 *   node_modules/.bin/bun scripts/bench/inference-handler.ts [--requests 50000] [--stream [--tools]]
 *   node_modules/.bin/deno run -A scripts/bench/inference-handler.ts …
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadEdgeConfig } from "../../edge/config.ts";
import { openDatabase } from "../../edge/db/client.ts";
import { migrate } from "../../edge/db/migrate.ts";
import { loadInferenceConfig } from "../../edge/inference/config.ts";
import { createInferenceRoutes } from "../../edge/inference/routes.ts";
import { INFERENCE_MIGRATIONS } from "../../edge/inference/usage.ts";
import { BENCH_KEY, BENCH_MODEL, COMPLETION, STREAM, TOOL_STREAM } from "./inference-servers.ts";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const REQUESTS = arg("requests", 50_000);
const STREAMING = process.argv.includes("--stream");
/** With tools in the request: the stub streams a role-less tool call, which SAM repairs (as Workers AI sends it). */
const TOOLS = process.argv.includes("--tools");

const streamed = new TextEncoder().encode(TOOLS ? TOOL_STREAM : STREAM);

/**
 * The stub's streamed body as each runtime's fetch gives one: a byte stream under Deno (its default reader
 * allocates a 64 KiB buffer per read, as for a fetch body), a plain stream under Bun.
 */
function streamBody(): ReadableStream<Uint8Array> {
  if (!("Deno" in globalThis)) return new Response(streamed).body!;
  let at = 0;
  return new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: 65_536,
    pull(controller) {
      const request = controller.byobRequest!;
      if (at === streamed.byteLength) {
        controller.close();
        request.respond(0);
        return;
      }
      const view = request.view!;
      const n = Math.min(view.byteLength, streamed.byteLength - at);
      new Uint8Array(view.buffer, view.byteOffset, n).set(streamed.subarray(at, at + n));
      at += n;
      request.respond(n);
    },
  });
}

const dir = mkdtempSync(join(tmpdir(), "sam-bench-"));
const env = { SAM_DATA_DIR: dir, SAM_INFERENCE_URL: "http://upstream.invalid/v1", SAM_RATE_LIMIT_RPM: "1000000" };
const db = await openDatabase(`file:${join(dir, "sam.db")}`, null);
await migrate(db, INFERENCE_MIGRATIONS);
const inference = createInferenceRoutes({
  config: loadEdgeConfig(env),
  inference: loadInferenceConfig(env),
  authenticate: async (token) =>
    token === BENCH_KEY ? { kind: "key", keyId: "k1", name: "bench", rateLimitPerMinute: null } : null,
  db,
  fetch: (async () =>
    STREAMING
      ? new Response(streamBody(), { headers: { "content-type": "text/event-stream" } })
      : new Response(COMPLETION, { headers: { "content-type": "application/json" } })) as unknown as typeof fetch,
});

const body = JSON.stringify({
  model: BENCH_MODEL,
  stream: STREAMING,
  messages: [{ role: "user", content: "ping" }],
  ...(TOOLS
    ? { tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }] }
    : {}),
});
const headers = {
  "content-type": "application/json",
  "content-length": String(body.length),
  authorization: `Bearer ${BENCH_KEY}`,
};
async function once(): Promise<void> {
  const res = await inference.app.fetch(
    new Request("http://sam.local/v1/chat/completions", { method: "POST", headers, body }),
  );
  await res.text();
  if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
}

for (let i = 0; i < 20_000; i++) await once();
const cpu = process.cpuUsage();
const start = performance.now();
for (let i = 0; i < REQUESTS; i++) await once();
const wall = performance.now() - start;
const used = process.cpuUsage(cpu);
console.log(
  `${"Deno" in globalThis ? "Deno" : "Bun"}${STREAMING ? ", streaming" : ""}${TOOLS ? " with tools" : ""}: ${
    (wall * 1000 / REQUESTS).toFixed(1)
  } µs/request wall, ${
    ((used.user + used.system) / REQUESTS).toFixed(1)
  } µs CPU (incl. the Request the bench builds and the stub's Response)`,
);
await inference.close();
db.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
