/**
 * The servers of the inference benchmark, each run as its own process so the load generator does not
 * share their event loop: `upstream` (an OpenAI-compatible server that answers instantly, JSON and SSE),
 * `sam --upstream URL [--real-auth]` (SAM's inference routes in front of it; by default the key check is a
 * constant comparison, with `--real-auth` the edge's own: SHA-256 of the token, key cache, database), `bare --upstream URL` (the floor: a
 * proxy that only forwards the request with `fetch` and returns the response, no auth, checks or usage) and
 * `pipe --upstream URL` (the bare proxy reading the answer through a JS stream: the floor for any proxy that
 * looks at the streamed bytes, as SAM does).
 * Each prints `PORT <n>` when listening. Under Bun they are served by `Bun.serve`; run with
 * `deno run -A` they are served by `Deno.serve`, the edge's production runtime.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadEdgeConfig } from "../../edge/config.ts";
import { openDatabase } from "../../edge/db/client.ts";
import { migrate } from "../../edge/db/migrate.ts";
import { createAuthenticate } from "../../edge/auth/authenticate.ts";
import type { Authenticate } from "../../edge/auth/caller.ts";
import { hashToken, randomToken } from "../../edge/auth/tokens.ts";
import type { Client } from "../../edge/db/client.ts";
import { MIGRATIONS } from "../../edge/db/migrations.ts";
import { loadInferenceConfig } from "../../edge/inference/config.ts";
import { createInferenceRoutes } from "../../edge/inference/routes.ts";
import { INFERENCE_MIGRATIONS } from "../../edge/inference/usage.ts";

export const BENCH_KEY = "sam_bench_key";
export const BENCH_MODEL = "bench-model";

export const COMPLETION = JSON.stringify({
  id: "chatcmpl-bench",
  object: "chat.completion",
  created: 1_700_000_000,
  model: BENCH_MODEL,
  choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 },
});
const chunkOf = (delta: object, finish: string | null) =>
  `data: ${
    JSON.stringify({
      id: "chatcmpl-bench",
      object: "chat.completion.chunk",
      created: 1_700_000_000,
      model: BENCH_MODEL,
      choices: [{ index: 0, delta, finish_reason: finish }],
    })
  }\n\n`;
export const STREAM = chunkOf({ role: "assistant", content: "" }, null) + chunkOf({ content: "ok" }, null) +
  chunkOf({}, "stop") + "data: [DONE]\n\n";
/** A streamed native tool call as Workers AI sends it: no `role` in the first delta. */
export const TOOL_STREAM = chunkOf({
  tool_calls: [{ index: 0, id: "call_bench", type: "function", function: { name: "get_weather", arguments: "" } }],
}, null) +
  chunkOf({ tool_calls: [{ index: 0, function: { arguments: '{"city":"Paris"}' } }] }, null) +
  chunkOf({}, "tool_calls") + "data: [DONE]\n\n";

export type Handler = (req: Request) => Response | Promise<Response>;
type DenoServe = {
  serve(opts: { port: number; hostname: string; onListen(addr: { port: number }): void }, h: Handler): unknown;
};

/** Serve on an ephemeral loopback port with the runtime's own server and print `PORT <n>`. */
export function serve(handler: Handler): void {
  const deno = (globalThis as { Deno?: DenoServe }).Deno;
  if (deno) {
    deno.serve({ port: 0, hostname: "127.0.0.1", onListen: ({ port }) => console.log(`PORT ${port}`) }, handler);
    return;
  }
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: handler });
  console.log(`PORT ${server.port}`);
}

function upstream() {
  serve(async (req) => {
    const body = await req.json() as { stream?: boolean; tools?: unknown[] };
    if (body.stream) {
      return new Response(body.tools ? TOOL_STREAM : STREAM, { headers: { "content-type": "text/event-stream" } });
    }
    return new Response(COMPLETION, { headers: { "content-type": "application/json" } });
  });
}

/** The least any fetch-based proxy in this runtime can do: forward the body, hand back the response. */
function bare(upstreamUrl: string) {
  serve(async (req) => {
    const res = await fetch(`${upstreamUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: await req.arrayBuffer(),
    });
    return new Response(res.body, {
      status: res.status,
      headers: { "content-type": res.headers.get("content-type") ?? "application/json" },
    });
  });
}

/**
 * The least a proxy that reads the answer in JS can do in this runtime: the bare forwarder, with the upstream
 * body passed to the client through a JS stream that reads it as SAM's does (into one buffer when it is a
 * byte stream, as Deno's fetch bodies are), pulled as the client reads, each chunk copied out.
 */
function pipe(upstreamUrl: string) {
  serve(async (req) => {
    const res = await fetch(`${upstreamUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: await req.arrayBuffer(),
    });
    const headers = { "content-type": res.headers.get("content-type") ?? "application/json" };
    if (!res.body) return new Response(null, { status: res.status, headers });
    return new Response(readInJs(res.body), { status: res.status, headers });
  });
}

function readInJs(upstream: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  // Deno's fetch bodies are byte streams, Bun's are not (and asking one for a BYOB reader throws).
  const byob = "Deno" in globalThis ? upstream.getReader({ mode: "byob" }) : null;
  const reader = byob === null ? upstream.getReader() : null;
  let buffer = new Uint8Array(new ArrayBuffer(16 * 1024));
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: Uint8Array;
      if (byob === null) {
        const read = await reader!.read();
        if (read.done) return controller.close();
        chunk = read.value;
      } else {
        const read = await byob.read(buffer);
        if (read.done) return controller.close();
        chunk = read.value;
        buffer = new Uint8Array(read.value.buffer);
      }
      controller.enqueue(chunk.slice());
    },
    cancel: (reason) => (byob ?? reader!).cancel(reason),
  }, { highWaterMark: 0 });
}

/** The edge's real key check (hash, then the key cache, then the database) with the bench key stored. */
async function realAuthenticate(db: Client): Promise<Authenticate> {
  await migrate(db, MIGRATIONS);
  await db.execute({
    sql: "INSERT INTO api_keys (id, name, token_hash, prefix, created_at) VALUES ('k1', 'bench', ?, 'sam_', 1)",
    args: [hashToken(BENCH_KEY)],
  });
  return createAuthenticate(db, randomToken("admin"));
}

/** SAM's inference routes; `realAuth` uses the edge's key check instead of a constant comparison. */
async function sam(upstreamUrl: string, realAuth: boolean) {
  const dir = mkdtempSync(join(tmpdir(), "sam-bench-"));
  const env = { SAM_DATA_DIR: dir, SAM_INFERENCE_URL: upstreamUrl, SAM_RATE_LIMIT_RPM: "1000000" };
  const db = await openDatabase(`file:${join(dir, "sam.db")}`, null);
  await migrate(db, INFERENCE_MIGRATIONS);
  const inference = createInferenceRoutes({
    config: loadEdgeConfig(env),
    inference: loadInferenceConfig(env),
    authenticate: realAuth
      ? await realAuthenticate(db)
      : async (token) =>
        token === BENCH_KEY ? { kind: "key", keyId: "k1", name: "bench", rateLimitPerMinute: null } : null,
    db,
  });
  serve(inference.app.fetch);
  process.on("SIGTERM", async () => {
    await inference.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
}

if (import.meta.main) {
  const [role, , url] = process.argv.slice(2);
  if (role === "upstream") upstream();
  else if (role === "sam" && url) await sam(url, process.argv.includes("--real-auth"));
  else if (role === "bare" && url) bare(url);
  else if (role === "pipe" && url) pipe(url);
  else {
    console.error(
      "usage: inference-servers.ts upstream | sam --upstream http://127.0.0.1:PORT/v1 [--real-auth] | bare --upstream … | pipe --upstream …",
    );
    process.exit(2);
  }
}
