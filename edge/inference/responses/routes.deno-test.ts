// POST /v1/responses under Deno, the edge's production runtime: SAM's inference routes served by Deno.serve
// in front of a scripted chat-completions upstream, driven by the real `openai` client.
import assert from "node:assert/strict";
import OpenAI from "openai";
import { createClient } from "@libsql/client";
import { loadEdgeConfig } from "../../config.ts";
import { migrate } from "../../db/migrate.ts";
import { startScriptedChat } from "../../../shared/testing/scripted-chat.ts";
import { loadInferenceConfig } from "../config.ts";
import { createInferenceRoutes } from "../routes.ts";
import { INFERENCE_MIGRATIONS } from "../usage.ts";
import { DROPPED_HEADER } from "./routes.ts";

const KEYS: Record<string, { keyId: string }> = { sam_a: { keyId: "a" }, sam_b: { keyId: "b" } };

async function serveSam(upstreamUrl: string, extra: Record<string, string> = {}) {
  const dir = await Deno.makeTempDir();
  const env = { SAM_DATA_DIR: dir, SAM_INFERENCE_URL: upstreamUrl, ...extra };
  const db = createClient({ url: `file:${dir}/sam.db` });
  await migrate(db, INFERENCE_MIGRATIONS);
  const inference = createInferenceRoutes({
    config: loadEdgeConfig(env),
    inference: loadInferenceConfig(env),
    authenticate: async (t) =>
      KEYS[t] ? { kind: "key", keyId: KEYS[t].keyId, name: t, rateLimitPerMinute: null } : null,
    db,
    log: () => {},
  });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, inference.app.fetch);
  const baseURL = `http://127.0.0.1:${server.addr.port}/v1`;
  return {
    baseURL,
    client: (apiKey = "sam_a") => new OpenAI({ baseURL, apiKey, maxRetries: 0 }),
    async close() {
      await server.shutdown();
      await inference.close();
      db.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("responses.create and responses.stream with a tool round trip under Deno", async () => {
  const upstream = await startScriptedChat((body) =>
    body.messages.some((m) => m.role === "tool")
      ? { text: "It is sunny" }
      : { calls: [{ name: "get_weather", args: { city: "Paris" } }] }
  );
  const sam = await serveSam(upstream.url);
  try {
    const tools = [{
      type: "function" as const,
      name: "get_weather",
      strict: false,
      parameters: { type: "object", properties: { city: { type: "string" } } },
    }];
    const openai = sam.client();
    const stream = openai.responses.stream({ model: "m", input: "Weather?", tools });
    const types: string[] = [];
    for await (const e of stream) types.push(e.type);
    const first = await stream.finalResponse();
    assert.equal(types[0], "response.created");
    assert.equal(types.at(-1), "response.completed");
    assert.ok(types.includes("response.function_call_arguments.done"));
    const call = first.output[0]!;
    assert.equal(call.type, "function_call");
    if (call.type !== "function_call") return;
    assert.deepEqual(JSON.parse(call.arguments), { city: "Paris" });
    const second = await openai.responses.create({
      model: "m",
      tools,
      previous_response_id: first.id,
      input: [{ type: "function_call_output", call_id: call.call_id, output: "sunny" }],
    });
    assert.equal(second.output_text, "It is sunny");
    // The stored turn (the call) and the new tool result reached the model in order.
    assert.deepEqual(upstream.requests[1]!.messages.map((m) => m.role), ["user", "assistant", "tool"]);
  } finally {
    await sam.close();
    await upstream.close();
  }
});

Deno.test("a stored response is the making key's only, and is gone after SAM_RESPONSE_RETENTION under Deno", async () => {
  const upstream = await startScriptedChat((_) => ({ text: "ok" }));
  const sam = await serveSam(upstream.url, { SAM_RESPONSE_RETENTION: "1500ms" });
  try {
    const first = await sam.client().responses.create({ model: "m", input: "hi" });
    const get = (key: string) =>
      fetch(`${sam.baseURL}/responses/${first.id}`, { headers: { authorization: `Bearer ${key}` } });
    const mine = await get("sam_a");
    assert.equal(mine.status, 200);
    assert.equal((await mine.json()).id, first.id);
    const theirs = await get("sam_b");
    assert.equal(theirs.status, 404);
    assert.equal((await theirs.json()).error.code, "response_not_found");
    const deadline = Date.now() + 10_000;
    let status = 200;
    while (status === 200 && Date.now() < deadline) {
      const res = await get("sam_a");
      status = res.status;
      await res.body?.cancel();
      if (status === 200) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 404, "the response outlived its retention");
  } finally {
    await sam.close();
    await upstream.close();
  }
});

Deno.test("Codex's built-in tools are dropped and named; a background request is a 400 under Deno", async () => {
  const upstream = await startScriptedChat((_) => ({ text: "fine" }));
  const sam = await serveSam(upstream.url);
  try {
    const post = (body: unknown) =>
      fetch(`${sam.baseURL}/responses`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer sam_a" },
        body: JSON.stringify(body),
      });
    const ok = await post({
      model: "m",
      input: "x",
      stream: true,
      tools: [{ type: "web_search" }],
      reasoning: { summary: "auto" },
    });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get(DROPPED_HEADER), "web_search, reasoning");
    const events = await ok.text();
    assert.match(events, /event: response.completed/);
    assert.equal(upstream.requests[0]!.tools, undefined);
    const bg = await post({ model: "m", input: "x", background: true });
    assert.equal(bg.status, 400);
    const err = (await bg.json()).error;
    assert.equal(err.type, "invalid_request_error");
    assert.equal(err.code, "unsupported_parameter");
  } finally {
    await sam.close();
    await upstream.close();
  }
});
