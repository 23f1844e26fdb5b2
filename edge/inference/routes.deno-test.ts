// The inference routes under Deno, the edge's production runtime: served by Deno.serve in front of an
// OpenAI-compatible upstream on loopback, driven by the real `openai` client.
import assert from "node:assert/strict";
import OpenAI from "openai";
import { createClient } from "@libsql/client";
import { loadEdgeConfig } from "../config.ts";
import { migrate } from "../db/migrate.ts";
import { loadInferenceConfig } from "./config.ts";
import { createInferenceRoutes } from "./routes.ts";
import { INFERENCE_MIGRATIONS } from "./usage.ts";

const sse = (delta: object, finish: string | null = null) =>
  `data: ${
    JSON.stringify({
      id: "c1",
      object: "chat.completion.chunk",
      created: 1,
      model: "m",
      choices: [{ index: 0, delta, finish_reason: finish }],
    })
  }\n\n`;

/** SAM's inference routes under Deno.serve in front of the upstream on `port`, with key `sam_k`. */
async function serveSam(port: number) {
  const dir = await Deno.makeTempDir();
  const env = { SAM_DATA_DIR: dir, SAM_INFERENCE_URL: `http://127.0.0.1:${port}/v1` };
  const db = createClient({ url: `file:${dir}/sam.db` });
  await migrate(db, INFERENCE_MIGRATIONS);
  const inference = createInferenceRoutes({
    config: loadEdgeConfig(env),
    inference: loadInferenceConfig(env),
    authenticate: async (t) => t === "sam_k" ? { kind: "key", keyId: "k", name: "n", rateLimitPerMinute: null } : null,
    db,
    log: () => {},
  });
  const sam = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, inference.app.fetch);
  return { dir, db, inference, sam };
}

Deno.test("streamed Hermes tool calls reach the openai client as tool_calls under Deno", async () => {
  const upstream = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    () =>
      new Response(
        sse({ role: "assistant", content: "" }) + sse({ content: '<tool_call>{"name": "f", ' }) +
          sse({ content: '"arguments": {"x": 1}}</tool_call>' }) + sse({}, "stop") + "data: [DONE]\n\n",
        {
          headers: { "content-type": "text/event-stream" },
        },
      ),
  );
  const { dir, db, inference, sam } = await serveSam(upstream.addr.port);
  try {
    const openai = new OpenAI({ baseURL: `http://127.0.0.1:${sam.addr.port}/v1`, apiKey: "sam_k", maxRetries: 0 });
    const done = await openai.chat.completions.stream({
      model: "m",
      messages: [{ role: "user", content: "go" }],
      tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: {} } } }],
    }).finalChatCompletion();
    const call = done.choices[0]!.message.tool_calls![0] as {
      id: string;
      function: { name: string; arguments: string };
    };
    assert.equal(done.choices[0]!.finish_reason, "tool_calls");
    assert.equal(call.function.name, "f");
    assert.deepEqual(JSON.parse(call.function.arguments), { x: 1 });
    assert.match(call.id, /^call_/);
    await inference.close();
    const rows = await db.execute("SELECT requests FROM inference_usage");
    assert.equal(rows.rows[0]!.requests, 1);
  } finally {
    await sam.shutdown();
    await upstream.shutdown();
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a client that goes away before the upstream answers aborts the upstream call under Deno", async () => {
  let upstreamAborted = false;
  let upstreamCalled = false;
  const upstream = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    upstreamCalled = true;
    return new Promise<Response>((resolve) => {
      const timer = setTimeout(
        () => resolve(new Response("{}", { headers: { "content-type": "application/json" } })),
        5_000,
      );
      req.signal.addEventListener("abort", () => {
        upstreamAborted = true;
        clearTimeout(timer);
        resolve(new Response(null, { status: 499 }));
      }, { once: true });
    });
  });
  const { dir, db, inference, sam } = await serveSam(upstream.addr.port);
  try {
    const ac = new AbortController();
    const pending = fetch(`http://127.0.0.1:${sam.addr.port}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer sam_k" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
      signal: ac.signal,
    }).catch((e) => e);
    const deadline = Date.now() + 3_000;
    while (!upstreamCalled && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    ac.abort();
    assert.ok(await pending instanceof Error);
    while (!upstreamAborted && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.ok(upstreamAborted, "the upstream call was not aborted");
    await inference.close();
  } finally {
    await sam.shutdown();
    await upstream.shutdown();
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
