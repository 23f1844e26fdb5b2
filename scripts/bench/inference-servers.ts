/**
 * The two servers of the inference benchmark, each run as its own process so the load generator does not
 * share their event loop: `upstream` (an OpenAI-compatible server that answers instantly, JSON and SSE)
 * and `sam --upstream URL` (SAM's inference routes in front of it). Each prints `PORT <n>` when listening.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadEdgeConfig } from "../../edge/config.ts";
import { openDatabase } from "../../edge/db/client.ts";
import { migrate } from "../../edge/db/migrate.ts";
import { loadInferenceConfig } from "../../edge/inference/config.ts";
import { createInferenceRoutes } from "../../edge/inference/routes.ts";
import { INFERENCE_MIGRATIONS } from "../../edge/inference/usage.ts";

export const BENCH_KEY = "sam_bench_key";
export const BENCH_MODEL = "bench-model";

const COMPLETION = JSON.stringify({
  id: "chatcmpl-bench",
  object: "chat.completion",
  created: 1_700_000_000,
  model: BENCH_MODEL,
  choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 },
});
const chunkOf = (delta: object, finish: string | null) =>
  `data: ${JSON.stringify({ id: "chatcmpl-bench", object: "chat.completion.chunk", created: 1_700_000_000, model: BENCH_MODEL, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
const STREAM = chunkOf({ role: "assistant", content: "" }, null) + chunkOf({ content: "ok" }, null) + chunkOf({}, "stop") + "data: [DONE]\n\n";

async function upstream() {
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const body = await req.json() as { stream?: boolean };
      if (body.stream) return new Response(STREAM, { headers: { "content-type": "text/event-stream" } });
      return new Response(COMPLETION, { headers: { "content-type": "application/json" } });
    },
  });
  console.log(`PORT ${server.port}`);
}

async function sam(upstreamUrl: string) {
  const dir = mkdtempSync(join(tmpdir(), "sam-bench-"));
  const env = { SAM_DATA_DIR: dir, SAM_INFERENCE_URL: upstreamUrl, SAM_RATE_LIMIT_RPM: "1000000" };
  const db = await openDatabase(`file:${join(dir, "sam.db")}`, null);
  await migrate(db, INFERENCE_MIGRATIONS);
  const inference = createInferenceRoutes({
    config: loadEdgeConfig(env),
    inference: loadInferenceConfig(env),
    authenticate: async (token) => token === BENCH_KEY ? { kind: "key", keyId: "k1", name: "bench", rateLimitPerMinute: null } : null,
    db,
  });
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: inference.app.fetch });
  console.log(`PORT ${server.port}`);
  process.on("SIGTERM", async () => {
    await inference.close();
    process.exit(0);
  });
}

if (import.meta.main) {
  const [role, , url] = process.argv.slice(2);
  if (role === "upstream") await upstream();
  else if (role === "sam" && url) await sam(url);
  else {
    console.error("usage: inference-servers.ts upstream | sam --upstream http://127.0.0.1:PORT/v1");
    process.exit(2);
  }
}
