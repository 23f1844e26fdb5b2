import { describe, expect, test } from "bun:test";
import * as v from "valibot";
import { HttpError } from "../../../shared/errors.ts";
import { ResponsesRequest } from "./schema.ts";
import { ResponseEvents } from "./stream.ts";
import { assistantMessage, type ChatMessage, toChat } from "./translate.ts";

const req = (body: Record<string, unknown>) => v.parse(ResponsesRequest, { model: "m", ...body });

function refused(body: Record<string, unknown>): HttpError {
  try {
    toChat(req(body), null);
  } catch (err) {
    if (err instanceof HttpError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

describe("toChat", () => {
  test("a string input is one user message; instructions lead as a system message", () => {
    const plan = toChat(req({ input: "hi", instructions: "be kind" }), null);
    expect(plan.chat.messages).toEqual([{ role: "system", content: "be kind" }, { role: "user", content: "hi" }]);
    expect(plan.history).toEqual([{ role: "user", content: "hi" }]);
  });

  test("items: developer → system (leading run merged), text parts joined, calls grouped into one assistant turn", () => {
    const plan = toChat(
      req({
        input: [
          { role: "developer", content: [{ type: "input_text", text: "a" }] },
          { role: "system", content: "b" },
          { role: "user", content: [{ type: "input_text", text: "one" }, { type: "input_text", text: "two" }] },
          { role: "assistant", content: [{ type: "output_text", text: "let me look" }] },
          { type: "function_call", call_id: "c1", name: "f", arguments: '{"x":1}' },
          { type: "function_call", call_id: "c2", name: "g", arguments: "{}", namespace: "ns" },
          { type: "function_call_output", call_id: "c1", output: "r1" },
          { type: "function_call_output", call_id: "c2", output: [{ type: "input_text", text: "r2" }] },
          { type: "reasoning", id: "rs_1", summary: [] },
          { role: "developer", content: "later" },
        ],
      }),
      null,
    );
    expect(plan.chat.messages).toEqual([
      { role: "system", content: "a\n\nb" },
      { role: "user", content: "one\ntwo" },
      {
        role: "assistant",
        content: "let me look",
        tool_calls: [
          { id: "c1", type: "function", function: { name: "f", arguments: '{"x":1}' } },
          { id: "c2", type: "function", function: { name: "ns__g", arguments: "{}" } },
        ],
      },
      { role: "tool", tool_call_id: "c1", content: "r1" },
      { role: "tool", tool_call_id: "c2", content: "r2" },
      { role: "system", content: "later" },
    ]);
    expect(plan.dropped).toEqual(["input:reasoning"]);
  });

  test("an image part keeps the user message as parts", () => {
    const plan = toChat(
      req({
        input: [{
          role: "user",
          content: [{ type: "input_text", text: "what?" }, {
            type: "input_image",
            image_url: "data:image/png;base64,AA",
            detail: "low",
          }],
        }],
      }),
      null,
    );
    expect((plan.chat.messages as ChatMessage[])[0]).toEqual({
      role: "user",
      content: [{ type: "text", text: "what?" }, {
        type: "image_url",
        image_url: { url: "data:image/png;base64,AA", detail: "low" },
      }],
    });
  });

  test("tools: functions forwarded, namespaces flattened, built-ins dropped; options mapped", () => {
    const plan = toChat(
      req({
        input: "x",
        tools: [
          {
            type: "function",
            name: "f",
            description: "d",
            strict: true,
            parameters: { type: "object", properties: {} },
          },
          {
            type: "namespace",
            name: "ns",
            tools: [{ type: "function", name: "g" }, { type: "custom", name: "patch" }],
          },
          { type: "web_search" },
          { type: "file_search", vector_store_ids: [] },
        ],
        tool_choice: "required",
        max_output_tokens: 50,
        temperature: 0.2,
        top_p: 0.9,
        stream: true,
        reasoning: { effort: "high" },
        include: ["reasoning.encrypted_content"],
        text: { format: { type: "json_schema", name: "out", schema: { type: "object" }, strict: true } },
      }),
      null,
    );
    expect(plan.chat).toMatchObject({
      tools: [
        { type: "function", function: { name: "f", description: "d", parameters: { type: "object", properties: {} } } },
        { type: "function", function: { name: "ns__g" } },
      ],
      tool_choice: "required",
      max_tokens: 50,
      temperature: 0.2,
      top_p: 0.9,
      stream: true,
      stream_options: { include_usage: true },
      response_format: { type: "json_schema", json_schema: { name: "out", schema: { type: "object" }, strict: true } },
    });
    expect(plan.tools.get("ns__g")).toEqual({ name: "g", namespace: "ns" });
    expect(plan.dropped).toEqual(["custom", "web_search", "file_search", "reasoning", "include"]);
    expect(plan.flattened).toEqual(["ns"]);
  });

  test("tool_choice: a named function maps; allowed_tools narrows the list", () => {
    const tools = [{ type: "function", name: "f" }, { type: "function", name: "g" }, {
      type: "namespace",
      name: "ns",
      tools: [{ type: "function", name: "h" }],
    }];
    expect(toChat(req({ input: "x", tools, tool_choice: { type: "function", name: "g" } }), null).chat.tool_choice)
      .toEqual({ type: "function", function: { name: "g" } });
    const narrowed = toChat(
      req({
        input: "x",
        tools,
        tool_choice: {
          type: "allowed_tools",
          mode: "required",
          tools: [{ type: "function", name: "f" }, { type: "namespace", name: "ns" }],
        },
      }),
      null,
    );
    expect((narrowed.chat.tools as { function: { name: string } }[]).map((t) => t.function.name)).toEqual([
      "f",
      "ns__h",
    ]);
    expect(narrowed.chat.tool_choice).toBe("required");
  });

  test("refused where dropping would change the meaning", () => {
    expect(refused({ input: "x", background: true }).code).toBe("unsupported_parameter");
    expect(refused({ input: "x", conversation: "conv_1" }).code).toBe("unsupported_parameter");
    expect(refused({ input: "x", tools: [{ type: "web_search" }], tool_choice: { type: "web_search" } }).code).toBe(
      "unsupported_tool_choice",
    );
    expect(refused({ input: "x", tool_choice: { type: "function", name: "f" } }).code).toBe("invalid_tool_choice");
    expect(refused({ input: [{ type: "function_call_output", output: "x" }] }).message).toBe(
      "input[0].call_id is required",
    );
    expect(refused({ input: [{ role: "user", content: [{ type: "input_text", text: 5 }] }] }).message).toContain(
      "input[0].content[0].text",
    );
  });

  test("previous turns come first; the stored history has no instructions", () => {
    const previous: ChatMessage[] = [{ role: "user", content: "a" }, { role: "assistant", content: "b" }];
    const plan = toChat(req({ input: "c", instructions: "sys" }), previous);
    expect(plan.chat.messages).toEqual([{ role: "system", content: "sys" }, ...previous, {
      role: "user",
      content: "c",
    }]);
    expect(plan.history).toEqual([...previous, { role: "user", content: "c" }]);
  });
});

describe("ResponseEvents", () => {
  const base = { id: "resp_1", created_at: 1, model: "m", request: req({ input: "x" }) };
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
    choices: [{ index: 0, delta, finish_reason: finish }],
  });
  const parse = (sse: string) => sse.split("\n\n").filter(Boolean).map((e) => JSON.parse(e.split("\n")[1]!.slice(6)));

  test("text then a tool call: items close in order, numbered events, usage from the final chunk", () => {
    const ev = new ResponseEvents(base, new Map([["ns__g", { name: "g", namespace: "ns" }]]), 400);
    let sse = ev.start();
    sse += ev.chunk(chunk({ content: "Hi" }));
    sse += ev.chunk(chunk({ content: " there" }));
    sse += ev.chunk(
      chunk({ tool_calls: [{ index: 0, id: "call_1", function: { name: "ns__g", arguments: '{"a":' } }] }),
    );
    sse += ev.chunk(chunk({ tool_calls: [{ index: 0, function: { arguments: "1}" } }] }, "tool_calls"));
    sse += ev.chunk({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 4 } });
    const { events, finished } = ev.finish();
    sse += events + ev.completed(finished);
    const all = parse(sse);
    expect(all.map((e) => e.sequence_number)).toEqual(all.map((_, i) => i));
    expect(all.map((e) => e.type)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.output_item.added",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "response.completed",
    ]);
    const done = all.at(-1).response;
    expect(done.status).toBe("completed");
    expect(done.usage).toEqual({
      input_tokens: 3,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: 4,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: 7,
    });
    expect(done.output[0]).toMatchObject({
      type: "message",
      role: "assistant",
      status: "completed",
      content: [{ type: "output_text", text: "Hi there" }],
    });
    expect(done.output[1]).toMatchObject({
      type: "function_call",
      call_id: "call_1",
      name: "g",
      namespace: "ns",
      arguments: '{"a":1}',
      status: "completed",
    });
    expect(assistantMessage(done.output)).toEqual({
      role: "assistant",
      content: "Hi there",
      tool_calls: [{ id: "call_1", type: "function", function: { name: "ns__g", arguments: '{"a":1}' } }],
    });
  });

  test("no usage from upstream: estimated; a length finish is incomplete", () => {
    const ev = new ResponseEvents(base, new Map(), 400);
    ev.chunk(chunk({ content: "12345678" }, "length"));
    const { finished } = ev.finish();
    expect(finished.estimated).toBe(true);
    expect(finished.usage).toEqual({ promptTokens: 100, completionTokens: 2 });
    expect(finished.response.status).toBe("incomplete");
    expect(finished.response.incomplete_details).toEqual({ reason: "max_output_tokens" });
    expect(ev.completed(finished)).toContain("event: response.incomplete");
  });

  test("a failure is response.failed with the message", () => {
    const ev = new ResponseEvents(base, new Map(), 0);
    const failed = parse(ev.failed("upstream broke"))[0];
    expect(failed.type).toBe("response.failed");
    expect(failed.response).toMatchObject({
      status: "failed",
      error: { code: "server_error", message: "upstream broke" },
    });
  });
});
