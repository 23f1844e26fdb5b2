// POST /v1/responses over real HTTP (Bun.serve) in front of a scripted chat-completions upstream, driven by
// the clients that speak the Responses API: openai-node's responses.create/stream and the OpenAI Agents SDK.
import { Agent, OpenAIResponsesModel, run, setTracingDisabled, tool } from "@openai/agents";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { type ScriptedChat, startScriptedChat } from "../../../shared/testing/scripted-chat.ts";
import { type Served, serveInference, TOKENS } from "../../testing/inference-harness.ts";
import { DROPPED_HEADER, FLATTENED_HEADER } from "./routes.ts";

setTracingDisabled(true);

const WEATHER = {
  type: "function" as const,
  name: "get_weather",
  description: "Weather in a city",
  strict: false,
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};

let upstream: ScriptedChat;
let sam: Served;
beforeAll(async () => {
  upstream = await startScriptedChat();
  sam = await serveInference({ SAM_INFERENCE_URL: upstream.url });
});
afterAll(async () => {
  await sam.close();
  await upstream.close();
});
beforeEach(() => {
  upstream.requests.length = 0;
  upstream.script = [];
});

const client = (apiKey: string = TOKENS.alice) => new OpenAI({ baseURL: sam.baseURL, apiKey, maxRetries: 0 });
const post = (body: unknown, key: string = TOKENS.alice) =>
  fetch(`${sam.baseURL}/responses`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
  });

describe("POST /v1/responses with the openai client", () => {
  test("responses.create: text in, output_text and usage out; instructions become the system message", async () => {
    upstream.script = [{ text: "Hello there" }];
    const r = await client().responses.create({ model: "m", instructions: "Be brief.", input: "Say hello" });
    expect(r.object).toBe("response");
    expect(r.status).toBe("completed");
    expect(r.id).toMatch(/^resp_/);
    expect(r.output_text).toBe("Hello there");
    expect(r.usage).toMatchObject({ input_tokens: 12, output_tokens: 5, total_tokens: 17 });
    expect(upstream.requests[0]!.messages).toEqual([{ role: "system", content: "Be brief." }, {
      role: "user",
      content: "Say hello",
    }]);
  });

  test("a tool round trip: function_call out, function_call_output back in as a tool message", async () => {
    upstream.script = [{ calls: [{ name: "get_weather", args: { city: "Paris" } }] }, { text: "Sunny in Paris" }];
    const openai = client();
    const first = await openai.responses.create({ model: "m", input: "Weather in Paris?", tools: [WEATHER] });
    const call = first.output.find((o) => o.type === "function_call")!;
    expect(call).toMatchObject({ type: "function_call", name: "get_weather", status: "completed" });
    expect(JSON.parse(call.arguments)).toEqual({ city: "Paris" });
    expect(upstream.requests[0]!.tools as unknown[]).toEqual([{
      type: "function",
      function: { name: "get_weather", description: "Weather in a city", parameters: WEATHER.parameters },
    }]);
    const second = await openai.responses.create({
      model: "m",
      tools: [WEATHER],
      input: [
        { role: "user", content: "Weather in Paris?" },
        { type: "function_call", call_id: call.call_id, name: call.name, arguments: call.arguments },
        { type: "function_call_output", call_id: call.call_id, output: "sunny, 24°C" },
      ],
    });
    expect(second.output_text).toBe("Sunny in Paris");
    expect(upstream.requests[1]!.messages).toEqual([
      { role: "user", content: "Weather in Paris?" },
      {
        role: "assistant",
        content: null,
        tool_calls: [{
          id: call.call_id,
          type: "function",
          function: { name: "get_weather", arguments: call.arguments },
        }],
      },
      { role: "tool", tool_call_id: call.call_id, content: "sunny, 24°C" },
    ]);
  });

  test("responses.stream: the event sequence, numbered, with text deltas and a streamed tool call", async () => {
    upstream.script = [{ calls: [{ name: "get_weather", args: { city: "Oslo" } }] }];
    const stream = client().responses.stream({ model: "m", input: "Weather in Oslo?", tools: [WEATHER] });
    const types: string[] = [];
    const seqs: number[] = [];
    let args = "";
    for await (const e of stream) {
      types.push(e.type);
      seqs.push(e.sequence_number);
      if (e.type === "response.function_call_arguments.delta") args += e.delta;
    }
    const final = await stream.finalResponse();
    expect(types).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "response.completed",
    ]);
    expect(seqs).toEqual(seqs.map((_, i) => i));
    expect(JSON.parse(args)).toEqual({ city: "Oslo" });
    expect(final.output[0]).toMatchObject({
      type: "function_call",
      name: "get_weather",
      arguments: args,
      status: "completed",
    });
    expect(final.usage?.total_tokens).toBe(17);
    expect(upstream.requests[0]!.stream).toBe(true);
    expect(upstream.requests[0]!.stream_options).toEqual({ include_usage: true });
  });

  test("streamed text: message item, content part, deltas, done events; output_text on the final response", async () => {
    upstream.script = [{ text: "Hello, streaming world" }];
    const stream = client().responses.stream({ model: "m", input: "hi" });
    const types: string[] = [];
    for await (const e of stream) types.push(e.type);
    expect(types).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    expect((await stream.finalResponse()).output_text).toBe("Hello, streaming world");
  });

  test("a tool call the model wrote as Hermes text comes out as a function_call (the chat path's repair)", async () => {
    upstream.script = [{ hermes: { name: "get_weather", args: { city: "Rome" } } }, {
      hermes: { name: "get_weather", args: { city: "Rome" } },
    }];
    for (const stream of [false, true]) {
      const r = stream
        ? await client().responses.stream({ model: "m", input: "Rome?", tools: [WEATHER] }).finalResponse()
        : await client().responses.create({ model: "m", input: "Rome?", tools: [WEATHER] });
      expect(r.output).toHaveLength(1);
      expect(r.output[0]).toMatchObject({ type: "function_call", name: "get_weather" });
      expect(JSON.parse((r.output[0] as { arguments: string }).arguments)).toEqual({ city: "Rome" });
    }
  });
});

describe("previous_response_id", () => {
  test("continues the stored conversation, for the key that made it only", async () => {
    upstream.script = [{ text: "Nice to meet you, Ada" }, { text: "Your name is Ada" }];
    const first = await client().responses.create({ model: "m", instructions: "first only", input: "My name is Ada" });
    const second = await client().responses.create({
      model: "m",
      previous_response_id: first.id,
      input: "What is my name?",
    });
    expect(second.output_text).toBe("Your name is Ada");
    expect(second.previous_response_id).toBe(first.id);
    // Instructions do not carry over; the earlier turns do.
    expect(upstream.requests[1]!.messages).toEqual([
      { role: "user", content: "My name is Ada" },
      { role: "assistant", content: "Nice to meet you, Ada" },
      { role: "user", content: "What is my name?" },
    ]);
    const got = await fetch(`${sam.baseURL}/responses/${first.id}`, {
      headers: { authorization: `Bearer ${TOKENS.alice}` },
    });
    expect(((await got.json()) as { id: string }).id).toBe(first.id);

    const other = await post({ model: "m", previous_response_id: first.id, input: "What is my name?" }, TOKENS.bob);
    expect(other.status).toBe(404);
    expect(((await other.json()) as { error: { code: string } }).error.code).toBe("response_not_found");
    const peek = await fetch(`${sam.baseURL}/responses/${first.id}`, {
      headers: { authorization: `Bearer ${TOKENS.bob}` },
    });
    expect(peek.status).toBe(404);
    expect(upstream.requests).toHaveLength(2);
  });

  test("store: false keeps nothing to continue from", async () => {
    upstream.script = [{ text: "ok" }];
    const first = await client().responses.create({ model: "m", input: "hi", store: false });
    const res = await post({ model: "m", previous_response_id: first.id, input: "again" });
    expect(res.status).toBe(404);
  });
});

describe("what real clients send", () => {
  test("Codex's request shape is accepted; dropped and flattened parts are named in headers; namespaced calls map back", async () => {
    upstream.script = [{ calls: [{ name: "multi_agent_v1__spawn_agent", args: { task: "x" } }] }];
    const res = await post({
      model: "m",
      stream: false,
      store: false,
      include: ["reasoning.encrypted_content"],
      reasoning: { summary: "auto" },
      parallel_tool_calls: true,
      prompt_cache_key: "abc",
      client_metadata: { session_id: "s" },
      tool_choice: "auto",
      input: [
        { type: "message", id: "msg_1", role: "developer", content: [{ type: "input_text", text: "You are Codex." }] },
        { type: "message", id: "msg_2", role: "developer", content: [{ type: "input_text", text: "Skills: none." }] },
        { type: "message", role: "user", content: [{ type: "input_text", text: "spawn one" }] },
      ],
      tools: [
        {
          type: "function",
          name: "exec_command",
          strict: false,
          parameters: {
            type: "object",
            properties: { cmd: { type: "string" } },
            required: ["cmd"],
            additionalProperties: false,
          },
        },
        {
          type: "namespace",
          name: "multi_agent_v1",
          description: "agents",
          tools: [{
            type: "function",
            name: "spawn_agent",
            strict: false,
            parameters: { type: "object", properties: { task: { type: "string" } } },
          }],
        },
        { type: "web_search", external_web_access: false },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.headers.get(DROPPED_HEADER)).toBe("web_search, reasoning, include");
    expect(res.headers.get(FLATTENED_HEADER)).toBe("multi_agent_v1");
    const body = (await res.json()) as { output: { type: string; name: string; namespace?: string }[] };
    expect(body.output[0]).toMatchObject({ type: "function_call", name: "spawn_agent", namespace: "multi_agent_v1" });
    const sent = upstream.requests[0]!;
    expect(sent.tools!.map((t) => t.function.name)).toEqual(["exec_command", "multi_agent_v1__spawn_agent"]);
    expect(sent.messages[0]).toEqual({ role: "system", content: "You are Codex.\n\nSkills: none." });
    for (const k of ["reasoning", "include", "prompt_cache_key", "client_metadata", "store"]) {
      expect(sent).not.toHaveProperty(k);
    }
  });

  test("a 400 in the error shape where dropping would change the meaning, before any upstream call", async () => {
    const cases: [unknown, string, string][] = [
      [{ model: "m", input: "x", background: true }, "unsupported_parameter", "background"],
      [
        { model: "m", input: "x", tools: [{ type: "web_search" }], tool_choice: { type: "web_search" } },
        "unsupported_tool_choice",
        "web_search",
      ],
      [
        { model: "m", input: "x", tools: [WEATHER], tool_choice: { type: "function", name: "nope" } },
        "invalid_tool_choice",
        "nope",
      ],
      [
        { model: "m", input: [{ type: "function_call", name: "f", arguments: "{}" }] },
        "invalid_request",
        "input[0].call_id",
      ],
      [{ model: "m", input: [{ role: "robot", content: "x" }] }, "invalid_request", "input[0].role"],
      [
        { model: "m", input: "x", tools: [{ type: "function", name: "bad name!" }] },
        "invalid_request",
        "tools[0].name",
      ],
      [{ input: "x" }, "invalid_request", "model"],
    ];
    for (const [body, code, mention] of cases) {
      const res = await post(body);
      expect(res.status).toBe(400);
      const err = ((await res.json()) as { error: { message: string; type: string; code: string } }).error;
      expect(err.code).toBe(code);
      expect(err.type).toBe("invalid_request_error");
      expect(err.message).toContain(mention);
    }
    expect(upstream.requests).toHaveLength(0);
  });

  test("an upstream error is the Responses error shape with the chat path's status mapping", async () => {
    upstream.script = [{ status: 400, message: "context too long" }];
    const res = await post({ model: "m", input: "x" });
    expect(res.status).toBe(400);
    const err = ((await res.json()) as { error: { message: string; code: string } }).error;
    expect(err.code).toBe("upstream_rejected");
    expect(err.message).toContain("context too long");
  });

  test("an upstream that breaks off mid-stream ends the stream with response.failed", async () => {
    upstream.script = [{ broken: "partial answ" }];
    const res = await post({ model: "m", input: "x", stream: true });
    expect(res.status).toBe(200);
    const events = (await res.text()).split("\n\n").filter(Boolean).map((e) => JSON.parse(e.split("\n")[1]!.slice(6)));
    const types = events.map((e) => e.type);
    // Whether the partial text arrives before the break depends on the runtime's fetch; the ending does not.
    expect(types.slice(0, 2)).toEqual(["response.created", "response.in_progress"]);
    expect(types.at(-1)).toBe("response.failed");
    expect(types).not.toContain("response.completed");
    expect(events.at(-1).response).toMatchObject({ status: "failed", error: { code: "upstream_stream_failed" } });
  });

  test("usage is recorded for the key like a chat completion", async () => {
    upstream.script = [{ text: "counted" }];
    await client(TOKENS.task).responses.create({ model: "usage-model", input: "count me" });
    const rows = await sam.inference.usage.query({ keyId: "key_alice" });
    expect(rows.find((r) => r.model === "usage-model")).toMatchObject({
      requests: 1,
      promptTokens: 12,
      completionTokens: 5,
    });
  });
});

describe("the OpenAI Agents SDK in responses mode", () => {
  for (const stream of [false, true]) {
    test(`runs a tool and answers with its result (${stream ? "streaming" : "not streaming"})`, async () => {
      upstream.script = (body) =>
        body.messages.some((m) => m.role === "tool")
          ? { text: `It is ${body.messages.find((m) => m.role === "tool")!.content}` }
          : { calls: [{ name: "get_weather", args: { city: "Lisbon" } }] };
      const seen: string[] = [];
      const weather = tool({
        name: "get_weather",
        description: "Weather in a city",
        parameters: {
          type: "object" as const,
          properties: { city: { type: "string" } },
          required: ["city"],
          additionalProperties: false as const,
        },
        execute: async (input) => {
          seen.push((input as { city: string }).city);
          return "windy in Lisbon";
        },
      });
      const agent = new Agent({
        name: "w",
        instructions: "Use tools.",
        model: new OpenAIResponsesModel(client(), "m"),
        tools: [weather],
      });
      let output: unknown;
      if (stream) {
        const result = await run(agent, "Weather in Lisbon?", { stream: true });
        for await (const _ of result) { /* drain */ }
        await result.completed;
        output = result.finalOutput;
      } else output = (await run(agent, "Weather in Lisbon?")).finalOutput;
      expect(seen).toEqual(["Lisbon"]);
      expect(output).toBe("It is windy in Lisbon");
      expect(upstream.requests).toHaveLength(2);
    });
  }
});
