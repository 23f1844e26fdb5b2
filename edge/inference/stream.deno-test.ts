// Streaming behaviour under Deno.serve that a client sees: an upstream that goes quiet after its headers ends
// the stream with an error event and [DONE], a role-less first delta reaches the client with a role, and a
// long answer read in many reads arrives intact.
import assert from "node:assert/strict";
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

async function withSam(
  upstream: (req: Request) => Response | Promise<Response>,
  env: Record<string, string>,
  run: (base: string) => Promise<void>,
) {
  const up = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, upstream);
  const dir = await Deno.makeTempDir();
  const all = { SAM_DATA_DIR: dir, SAM_INFERENCE_URL: `http://127.0.0.1:${up.addr.port}/v1`, ...env };
  const db = createClient({ url: `file:${dir}/sam.db` });
  await migrate(db, INFERENCE_MIGRATIONS);
  const inference = createInferenceRoutes({
    config: loadEdgeConfig(all),
    inference: loadInferenceConfig(all),
    authenticate: async (t) => t === "sam_k" ? { kind: "key", keyId: "k", name: "n", rateLimitPerMinute: null } : null,
    db,
    log: () => {},
  });
  const sam = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, inference.app.fetch);
  try {
    await run(`http://127.0.0.1:${sam.addr.port}`);
  } finally {
    await sam.shutdown();
    await up.shutdown();
    await inference.close();
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const chat = (base: string, tools: boolean) =>
  fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer sam_k" },
    body: JSON.stringify({
      model: "m",
      stream: true,
      messages: [{ role: "user", content: "hi" }],
      ...(tools ? { tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }] } : {}),
    }),
    signal: AbortSignal.timeout(10_000),
  });

for (const tools of [false, true]) {
  Deno.test(`an upstream silent after its first event ends the stream with an error event and [DONE] (tools: ${tools})`, async () => {
    let upstreamCancelled = false;
    const upstream = () =>
      new Response(
        new ReadableStream({
          start(c) {
            c.enqueue(new TextEncoder().encode(sse({ content: "partial " }) + 'data: {"id":'));
          },
          cancel() {
            upstreamCancelled = true;
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      );
    await withSam(upstream, { SAM_INFERENCE_IDLE_TIMEOUT: "300ms" }, async (base) => {
      const res = await chat(base, tools);
      assert.equal(res.status, 200);
      const text = await res.text();
      const datas = text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
      assert.equal(datas.at(-1), "[DONE]");
      const first = JSON.parse(datas[0]!);
      assert.deepEqual(first.choices[0].delta, { role: "assistant", content: "partial " });
      const err = JSON.parse(datas.at(-2)!);
      assert.equal(err.error.code, "upstream_stream_failed");
      assert.match(err.error.message, /sent nothing for 0\.3s \(SAM_INFERENCE_IDLE_TIMEOUT\)/);
      const deadline = Date.now() + 3_000;
      while (!upstreamCancelled && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(upstreamCancelled, "the idle upstream was not cancelled");
    });
  });
}

Deno.test("openai-node's chat.completions.stream() gets role-less upstream streams as text and tool calls under Deno", async () => {
  const { default: OpenAI } = await import("openai");
  const { CITY_ARGS, scriptedModel, TEXT_ANSWER } = await import("../testing/scripted-model.ts");
  await withSam(scriptedModel, {}, async (base) => {
    const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: "sam_k", maxRetries: 0 });
    const tools = [{
      type: "function" as const,
      function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } },
    }];
    const text = await openai.chat.completions.stream({ model: "text", messages: [{ role: "user", content: "hi" }] })
      .finalChatCompletion();
    assert.equal(text.choices[0]!.message.content, TEXT_ANSWER);
    for (const shape of ["native", "hermes", "json"]) {
      const done = await openai.chat.completions.stream({
        model: shape,
        messages: [{ role: "user", content: "hi" }],
        tools,
      }).finalChatCompletion();
      const call = done.choices[0]!.message.tool_calls![0] as { function: { name: string; arguments: string } };
      assert.equal(call.function.name, "get_weather", shape);
      assert.deepEqual(JSON.parse(call.function.arguments), CITY_ARGS);
    }
  });
});

for (const tools of [false, true]) {
  Deno.test(`an answer that arrives in one burst larger than SAM's read buffer reaches the client intact (tools: ${tools})`, async () => {
    // 2,000 events, ≈ 200 KiB in one body: SAM reads it in several reads, back to back.
    const events = [sse({ role: "assistant", content: "Hello" })];
    for (let i = 0; i < 2_000; i++) events.push(sse({ content: ` word${i}` }));
    events.push(sse({}, "stop"), "data: [DONE]\n\n");
    const upstream = () => new Response(events.join(""), { headers: { "content-type": "text/event-stream" } });
    await withSam(upstream, {}, async (base) => {
      const res = await chat(base, tools);
      assert.equal(res.status, 200);
      assert.ok(await res.text() === events.join(""), "the answer arrived changed");
    });
  });
}

Deno.test("a client that goes away mid-stream cancels the upstream stream under Deno", async () => {
  let upstreamCancelled = false;
  const upstream = () =>
    new Response(
      new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode(sse({ content: "first " })));
        },
        cancel() {
          upstreamCancelled = true;
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    );
  await withSam(upstream, {}, async (base) => {
    const ac = new AbortController();
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer sam_k" },
      body: JSON.stringify({ model: "m", stream: true, messages: [{ role: "user", content: "hi" }] }),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    assert.match(new TextDecoder().decode((await reader.read()).value), /first /);
    // Longer than the client watch waits before it looks at the client (CLIENT_WATCH_AFTER_MS).
    await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    const deadline = Date.now() + 3_000;
    while (!upstreamCancelled && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(upstreamCancelled, "the upstream stream was not cancelled");
  });
});
