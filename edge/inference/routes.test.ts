import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import {
  chatCompletion,
  chunk,
  type CloudflareFake,
  sseEvents,
  startCloudflareFake,
  textStream,
} from "../testing/cloudflare-fake.ts";
import { fakeEnv, type Served, serveInference, TOKENS } from "../testing/inference-harness.ts";
import { FALLBACK_HEADER, UPSTREAM_HEADER } from "./routes.ts";

const MODEL = "@cf/meta/llama-3.3-70b-instruct-fp8-fast";
const WEATHER_TOOL = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "Weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

let fake: CloudflareFake;
beforeAll(() => {
  fake = startCloudflareFake();
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.requests.length = 0;
  for (const q of Object.values(fake.replies)) q.length = 0;
});

const client = (s: Served, apiKey: string = TOKENS.alice) => new OpenAI({ baseURL: s.baseURL, apiKey, maxRetries: 0 });
const chats = () => fake.requests.filter((r) => r.endpoint !== "management");

/** Split a byte string into fixed-size slices, so SSE events arrive cut at arbitrary places. */
function oddChunks(events: string[], size: number): string[] {
  const all = events.join("");
  const out: string[] = [];
  for (let i = 0; i < all.length; i += size) out.push(all.slice(i, i + size));
  return out;
}

/** A multi-turn tool-calling loop with the `openai` client: call, run the tool, send the result back. */
async function toolLoop(s: Served, stream: boolean) {
  const openai = client(s);
  const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: "user", content: "Weather in Paris?" }];
  let first: OpenAI.Chat.ChatCompletionMessage;
  if (stream) {
    const runner = openai.chat.completions.stream({ model: MODEL, messages, tools: [WEATHER_TOOL] });
    const done = await runner.finalChatCompletion();
    expect(done.choices[0]!.finish_reason).toBe("tool_calls");
    first = done.choices[0]!.message;
  } else {
    const done = await openai.chat.completions.create({ model: MODEL, messages, tools: [WEATHER_TOOL] });
    expect(done.choices[0]!.finish_reason).toBe("tool_calls");
    first = done.choices[0]!.message;
  }
  expect(first.content).toBeNull();
  expect(first.tool_calls).toHaveLength(1);
  const call = first.tool_calls![0]! as OpenAI.Chat.ChatCompletionMessageFunctionToolCall;
  expect(call.id).toMatch(/^call_/);
  expect(call.type).toBe("function");
  expect(call.function.name).toBe("get_weather");
  expect(JSON.parse(call.function.arguments)).toEqual({ city: "Paris" });

  messages.push(first, { role: "tool", tool_call_id: call.id, content: "18°C and sunny" });
  fake.replies[s.inference.upstreamMode() === "gateway" ? "gateway" : "rest"].push({
    json: chatCompletion({ content: "It is 18°C and sunny in Paris." }),
  });
  const second = await openai.chat.completions.create({ model: MODEL, messages, tools: [WEATHER_TOOL] });
  expect(second.choices[0]!.message.content).toBe("It is 18°C and sunny in Paris.");
  // The id the client got is the id the upstream sees on the next turn: stable across the round-trip.
  const sent = chats().at(-1)!.body as {
    messages: { role: string; tool_call_id?: string; tool_calls?: { id: string }[] }[];
  };
  expect(sent.messages[1]!.tool_calls![0]!.id).toBe(call.id);
  expect(sent.messages[2]!.tool_call_id).toBe(call.id);
}

describe("Workers AI REST path", () => {
  let s: Served;
  beforeAll(async () => {
    s = await serveInference(fakeEnv(fake));
  });
  afterAll(async () => {
    await s.close();
  });

  test("a non-streaming answer reaches the openai client, served by REST with the provider token", async () => {
    const { data, response } = await client(s).chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: "hi" }] })
      .withResponse();
    expect(data.choices[0]!.message.content).toBe("Hello from rest");
    expect(response.headers.get(UPSTREAM_HEADER)).toBe("rest");
    expect(response.headers.get("x-ratelimit-limit")).toBe("60");
    const [req] = chats();
    expect(req!.path).toBe(`/client/v4/accounts/${fake.accountId}/ai/v1/chat/completions`);
    expect(req!.headers.authorization).toBe(`Bearer ${fake.apiToken}`);
    expect(Object.keys(req!.headers).filter((h) => h.startsWith("cf-aig-"))).toEqual([]);
  });

  test("a well-formed upstream answer passes through byte for byte", async () => {
    const exact =
      `{"id":"x1",  "object":"chat.completion","created":1,"model":"${MODEL}","choices":[{"index":0,"message":{"role":"assistant","content":"exact"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`;
    fake.replies.rest.push({ raw: exact });
    const res = await fetch(`${s.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKENS.alice}`, "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }] }),
    });
    expect(await res.text()).toBe(exact);
  });

  test("streamed text arrives intact even when SSE events are cut mid-JSON", async () => {
    fake.replies.rest.push({ sse: oddChunks(textStream(["The ", "quick ", "brown ", "fox"]), 7) });
    const stream = await client(s).chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "hi" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage: unknown = null;
    for await (const c of stream) {
      text += c.choices[0]?.delta.content ?? "";
      if (c.usage) usage = c.usage;
    }
    expect(text).toBe("The quick brown fox");
    expect(usage).toMatchObject({ prompt_tokens: 9, completion_tokens: 4 });
  });

  test("a stream the upstream ends without [DONE] still ends with data: [DONE]", async () => {
    fake.replies.rest.push({
      sse: sseEvents([chunk({ role: "assistant", content: "cut" }), chunk({}, "stop")], { done: false }),
    });
    const res = await fetch(`${s.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKENS.alice}`, "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, stream: true, messages: [{ role: "user", content: "hi" }] }),
    });
    const body = await res.text();
    expect(body.trimEnd().endsWith("data: [DONE]")).toBe(true);
    expect(body).toContain('"content":"cut"');
  });

  test("multi-turn tool calling: a Hermes <tool_call> text answer becomes tool_calls (non-streaming)", async () => {
    fake.replies.rest.push({
      json: chatCompletion({
        content: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
      }),
    });
    await toolLoop(s, false);
  });

  test("multi-turn tool calling: a Hermes tool call split across stream chunks becomes tool_calls", async () => {
    fake.replies.rest.push({
      sse: oddChunks(
        sseEvents([
          chunk({ role: "assistant", content: "" }),
          chunk({ content: "<tool" }),
          chunk({ content: '_call>{"name": "get_weather", ' }),
          chunk({ content: '"arguments": {"city": "Paris"}}</tool_call>' }),
          chunk({}, "stop"),
        ]),
        11,
      ),
    });
    await toolLoop(s, true);
  });

  test("a bare JSON tool call with object arguments and no id is repaired", async () => {
    fake.replies.rest.push({
      json: chatCompletion({ content: '{"name": "get_weather", "parameters": {"city": "Paris"}}' }),
    });
    await toolLoop(s, false);
  });

  test("native tool_calls with object arguments and missing ids are repaired, streaming too", async () => {
    fake.replies.rest.push({
      sse: sseEvents([
        chunk({
          role: "assistant",
          content: null,
          tool_calls: [{ function: { name: "get_weather", arguments: { city: "Paris" } } }],
        }),
        chunk({}, "stop"),
      ]),
    });
    await toolLoop(s, true);
  });

  test("prose that merely mentions a tag or JSON is not turned into a tool call", async () => {
    fake.replies.rest.push({ sse: textStream(["Use <b>bold</b> ", "and {braces}", " freely."]) });
    const stream = await client(s).chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "hi" }],
      tools: [WEATHER_TOOL],
      stream: true,
    });
    let text = "";
    let calls = 0;
    for await (const c of stream) {
      text += c.choices[0]?.delta.content ?? "";
      calls += c.choices[0]?.delta.tool_calls?.length ?? 0;
    }
    expect(text).toBe("Use <b>bold</b> and {braces} freely.");
    expect(calls).toBe(0);
    fake.replies.rest.push({ json: chatCompletion({ content: '{"name": "Bob", "age": 3}' }) });
    const json = await client(s).chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "hi" }],
      tools: [WEATHER_TOOL],
    });
    expect(json.choices[0]!.message.content).toBe('{"name": "Bob", "age": 3}');
    expect(json.choices[0]!.message.tool_calls ?? []).toEqual([]);
  });

  test("the Vercel AI SDK runs a tool loop (generateText) and streams text (streamText)", async () => {
    fake.replies.rest.push(
      {
        json: chatCompletion({
          content: '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>',
        }),
      },
      { json: chatCompletion({ content: "Oslo: 3°C." }) },
      { sse: textStream(["str", "eam", "ed"]) },
    );
    const provider = createOpenAICompatible({
      name: "sam",
      baseURL: s.baseURL,
      apiKey: TOKENS.alice,
      includeUsage: true,
    });
    const seen: unknown[] = [];
    const result = await generateText({
      model: provider(MODEL),
      prompt: "Weather in Oslo?",
      maxRetries: 0,
      stopWhen: stepCountIs(3),
      tools: {
        get_weather: tool({
          description: "Weather in a city",
          inputSchema: jsonSchema<{ city: string }>({
            type: "object",
            properties: { city: { type: "string" } },
            required: ["city"],
          }),
          execute: async (input) => {
            seen.push(input);
            return "3°C";
          },
        }),
      },
    });
    expect(seen).toEqual([{ city: "Oslo" }]);
    expect(result.text).toBe("Oslo: 3°C.");
    const streamed = streamText({ model: provider(MODEL), prompt: "hi", maxRetries: 0 });
    let text = "";
    for await (const part of streamed.textStream) text += part;
    expect(text).toBe("streamed");
  });
});

describe("AI Gateway path", () => {
  let s: Served;
  beforeAll(async () => {
    fake.gateways.set("sam-gw", {
      id: "sam-gw",
      authentication: true,
      collect_logs: true,
      rate_limiting_limit: 0,
      rate_limiting_interval: 0,
    });
    s = await serveInference(fakeEnv(fake, {
      SAM_AI_GATEWAY: "on",
      CF_AI_GATEWAY_ID: "sam-gw",
      CF_AIG_TOKEN: fake.gatewayToken,
      SAM_INFERENCE_FIRST_BYTE_TIMEOUT: "400ms",
    }));
  });
  afterAll(async () => {
    await s.close();
  });

  test("requests carry provider auth, gateway auth and per-user metadata, each in its own header", async () => {
    const { data, response } = await client(s, TOKENS.task).chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: "hi" }] })
      .withResponse();
    expect(data.choices[0]!.message.content).toBe("Hello from gateway");
    expect(response.headers.get(UPSTREAM_HEADER)).toBe("gateway");
    const [req] = chats();
    expect(req!.path).toBe(`/v1/${fake.accountId}/sam-gw/workers-ai/v1/chat/completions`);
    expect(req!.headers.authorization).toBe(`Bearer ${fake.apiToken}`);
    expect(req!.headers["cf-aig-authorization"]).toBe(`Bearer ${fake.gatewayToken}`);
    expect(JSON.parse(req!.headers["cf-aig-metadata"]!)).toEqual({
      user: "alice",
      key: "key_alice",
      task: "task_1",
      node: "node_7",
      model: MODEL,
    });
  });

  test("streaming and a tool loop work through the gateway", async () => {
    fake.replies.gateway.push({ sse: textStream(["through ", "the ", "gateway"]) });
    const stream = await client(s).chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    let text = "";
    for await (const c of stream) text += c.choices[0]?.delta.content ?? "";
    expect(text).toBe("through the gateway");
    fake.replies.gateway.push({
      json: chatCompletion({
        content: '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
      }),
    });
    await toolLoop(s, false);
  });

  test("a gateway 5xx is retried once on REST, and the response says so", async () => {
    fake.replies.gateway.push({ status: 502, json: { error: "bad gateway" } });
    const { data, response } = await client(s).chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: "hi" }] })
      .withResponse();
    expect(data.choices[0]!.message.content).toBe("Hello from rest");
    expect(response.headers.get(UPSTREAM_HEADER)).toBe("rest");
    expect(response.headers.get(FALLBACK_HEADER)).toBe("gateway: HTTP 502");
    expect(chats().map((r) => r.endpoint)).toEqual(["gateway", "rest"]);
  });

  test("a gateway that is slow to its first byte falls back to REST (streaming, with the AI SDK)", async () => {
    fake.replies.gateway.push({ delayMs: 3_000, sse: textStream(["too late"]) });
    fake.replies.rest.push({ sse: textStream(["from ", "rest"]) });
    const provider = createOpenAICompatible({ name: "sam", baseURL: s.baseURL, apiKey: TOKENS.alice });
    const started = Date.now();
    const streamed = streamText({ model: provider(MODEL), prompt: "hi", maxRetries: 0 });
    let text = "";
    for await (const part of streamed.textStream) text += part;
    expect(text).toBe("from rest");
    expect(Date.now() - started).toBeLessThan(2_500);
  });

  test("a gateway 4xx is the user's answer: no retry on REST", async () => {
    fake.replies.gateway.push({ status: 400, json: { error: { message: "max_tokens too large for this model" } } });
    const err = await client(s).chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }] })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.message).toContain("max_tokens too large");
    expect(chats().map((r) => r.endpoint)).toEqual(["gateway"]);
  });

  test("REST failing after the gateway failed is a 502 the client sees as a server error", async () => {
    fake.replies.gateway.push({ status: 503, json: {} });
    fake.replies.rest.push({
      status: 500,
      json: { success: false, errors: [{ code: 3043, message: "Internal server error" }] },
    });
    const err = await client(s).chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }] })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect(err.status).toBe(502);
    expect(err.error).toMatchObject({ type: "upstream_error", code: "upstream_failed" });
  });
});

describe("generic OpenAI-compatible upstream", () => {
  let s: Served;
  beforeAll(async () => {
    s = await serveInference({ SAM_INFERENCE_URL: fake.openaiBase, SAM_INFERENCE_KEY: fake.apiToken });
  });
  afterAll(async () => {
    await s.close();
  });

  test("chat goes to SAM_INFERENCE_URL with SAM_INFERENCE_KEY; models come from the upstream", async () => {
    const { data, response } = await client(s).chat.completions
      .create({ model: "qwen2.5-coder:7b", messages: [{ role: "user", content: "hi" }] })
      .withResponse();
    expect(data.choices[0]!.message.content).toBe("Hello from openai");
    expect(response.headers.get(UPSTREAM_HEADER)).toBe("openai-compatible");
    expect(chats()[0]!.headers.authorization).toBe(`Bearer ${fake.apiToken}`);
    const models = await client(s).models.list();
    expect(models.data.map((m) => m.id)).toEqual(["qwen2.5-coder:7b"]);
  });
});
