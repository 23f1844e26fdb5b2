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
  `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;

Deno.test("streamed Hermes tool calls reach the openai client as tool_calls under Deno", async () => {
  const upstream = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () =>
    new Response(sse({ role: "assistant", content: "" }) + sse({ content: "<tool_call>{\"name\": \"f\", " }) +
      sse({ content: "\"arguments\": {\"x\": 1}}</tool_call>" }) + sse({}, "stop") + "data: [DONE]\n\n", {
      headers: { "content-type": "text/event-stream" },
    }));
  const dir = await Deno.makeTempDir();
  const env = { SAM_DATA_DIR: dir, SAM_INFERENCE_URL: `http://127.0.0.1:${upstream.addr.port}/v1` };
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
  try {
    const openai = new OpenAI({ baseURL: `http://127.0.0.1:${sam.addr.port}/v1`, apiKey: "sam_k", maxRetries: 0 });
    const done = await openai.chat.completions.stream({
      model: "m",
      messages: [{ role: "user", content: "go" }],
      tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: {} } } }],
    }).finalChatCompletion();
    const call = done.choices[0]!.message.tool_calls![0] as { id: string; function: { name: string; arguments: string } };
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
