// Real clients from npm against SAM's /v1 over HTTP (Bun.serve), a scripted model behind it that omits
// `role` and answers tool calls natively, as Hermes `<tool_call>` text or as bare JSON. Each client runs a
// tool-result round trip, streaming and not, and must end with the answer that quotes the tool's result.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { AIMessage, type AIMessageChunk, HumanMessage, ToolMessage } from "@langchain/core/messages";
import { ChatOpenAI } from "@langchain/openai";
import { Agent, OpenAIChatCompletionsModel, run, setTracingDisabled, tool as agentTool } from "@openai/agents";
import { generateText, jsonSchema, stepCountIs, streamText, tool as aiTool } from "ai";
import OpenAI from "openai";
import { z } from "zod";
import { type Served, serveInference, TOKENS } from "../testing/inference-harness.ts";
import { CITY_ARGS, finalAnswer, scriptedModel, type Shape, SHAPES, TEXT_ANSWER } from "../testing/scripted-model.ts";

const TOOL_RESULT = "sunny, 21°C";
const parameters: {
  type: "object";
  properties: { city: { type: "string" } };
  required: string[];
  additionalProperties: false;
} = { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false };
const expected = (shape: Shape) => (shape === "text" ? TEXT_ANSWER : finalAnswer(TOOL_RESULT));

let upstream: ReturnType<typeof Bun.serve>;
let sam: Served;
let openai: OpenAI;

beforeAll(async () => {
  setTracingDisabled(true);
  upstream = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: scriptedModel });
  sam = await serveInference({
    SAM_INFERENCE_URL: `http://127.0.0.1:${upstream.port}/v1`,
    SAM_RATE_LIMIT_RPM: "1000000",
  });
  openai = new OpenAI({ baseURL: sam.baseURL, apiKey: TOKENS.alice, maxRetries: 0 });
});

afterAll(async () => {
  await sam.close();
  await upstream.stop(true);
});

const cases = SHAPES.flatMap((shape) => [false, true].map((stream) => ({ shape, stream })));

describe("openai-node", () => {
  test.each(cases)("runTools: $shape, stream $stream", async ({ shape, stream }) => {
    const calls: unknown[] = [];
    const params = {
      model: shape,
      messages: [{ role: "user" as const, content: "Weather in Paris?" }],
      tools: [{
        type: "function" as const,
        function: {
          name: "get_weather",
          parameters,
          parse: JSON.parse,
          function: (args: unknown) => {
            calls.push(args);
            return TOOL_RESULT;
          },
        },
      }],
    };
    // runTools' overloads do not narrow on a `stream` known only at run time.
    const runTools = openai.chat.completions.runTools.bind(openai.chat.completions) as (
      p: unknown,
    ) => { finalContent(): Promise<string | null> };
    const runner = runTools({ ...params, stream });
    expect(await runner.finalContent()).toBe(expected(shape));
    expect(calls).toEqual(shape === "text" ? [] : [CITY_ARGS]);
  });

  test.each([...SHAPES])("chat.completions.stream(): %s, then the tool result", async (shape) => {
    const tools = [{ type: "function" as const, function: { name: "get_weather", parameters } }];
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "Weather in Paris?" }];
    const first = await openai.chat.completions.stream({ model: shape, messages, tools }).finalChatCompletion();
    const message = first.choices[0]!.message;
    if (shape === "text") {
      expect(message.content).toBe(TEXT_ANSWER);
      return;
    }
    expect(first.choices[0]!.finish_reason).toBe("tool_calls");
    const call = message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(JSON.parse(call.function.arguments)).toEqual(CITY_ARGS);
    messages.push(message as OpenAI.ChatCompletionAssistantMessageParam, {
      role: "tool",
      tool_call_id: call.id,
      content: TOOL_RESULT,
    });
    const second = await openai.chat.completions.stream({ model: shape, messages, tools }).finalChatCompletion();
    expect(second.choices[0]!.message.content).toBe(finalAnswer(TOOL_RESULT));
  });
});

describe("LangChain ChatOpenAI.bindTools", () => {
  test.each(cases)("$shape, stream $stream", async ({ shape, stream }) => {
    const model = new ChatOpenAI({
      model: shape,
      apiKey: TOKENS.alice,
      configuration: { baseURL: sam.baseURL },
      maxRetries: 0,
    })
      .bindTools([{
        type: "function",
        function: { name: "get_weather", description: "Weather in a city", parameters },
      }]);
    const ask = async (messages: (HumanMessage | AIMessage | ToolMessage)[]) => {
      if (!stream) return model.invoke(messages);
      let acc: AIMessageChunk | undefined;
      for await (const chunk of await model.stream(messages)) acc = acc ? acc.concat(chunk) : chunk;
      return acc!;
    };
    const history: (HumanMessage | AIMessage | ToolMessage)[] = [new HumanMessage("Weather in Paris?")];
    const first = await ask(history);
    if (shape === "text") {
      expect(first.content).toBe(TEXT_ANSWER);
      expect(first.tool_calls ?? []).toEqual([]);
      return;
    }
    expect(first.tool_calls).toHaveLength(1);
    const call = first.tool_calls![0]!;
    expect(call.name).toBe("get_weather");
    expect(call.args).toEqual(CITY_ARGS);
    history.push(
      new AIMessage({ content: "", tool_calls: first.tool_calls }),
      new ToolMessage({ content: TOOL_RESULT, tool_call_id: call.id! }),
    );
    expect((await ask(history)).content).toBe(finalAnswer(TOOL_RESULT));
  });
});

describe("OpenAI Agents SDK (chat_completions)", () => {
  test.each(cases)("$shape, stream $stream", async ({ shape, stream }) => {
    const calls: unknown[] = [];
    const agent = new Agent({
      name: "weather",
      instructions: "Answer with the weather tool.",
      model: new OpenAIChatCompletionsModel(openai, shape),
      tools: [agentTool({
        name: "get_weather",
        description: "Weather in a city",
        parameters: z.object({ city: z.string() }),
        execute: async (args) => {
          calls.push(args);
          return TOOL_RESULT;
        },
      })],
    });
    let output: unknown;
    if (stream) {
      const result = await run(agent, "Weather in Paris?", { stream: true });
      for await (const _ of result.toTextStream()) { /* drain */ }
      await result.completed;
      output = result.finalOutput;
    } else {
      output = (await run(agent, "Weather in Paris?")).finalOutput;
    }
    expect(output).toBe(expected(shape));
    expect(calls).toEqual(shape === "text" ? [] : [CITY_ARGS]);
  });
});

describe("Vercel AI SDK (openai-compatible)", () => {
  test.each(cases)("$shape, stream $stream", async ({ shape, stream }) => {
    const provider = createOpenAICompatible({
      name: "sam",
      baseURL: sam.baseURL,
      apiKey: TOKENS.alice,
      includeUsage: true,
    });
    const calls: unknown[] = [];
    const options = {
      model: provider(shape),
      prompt: "Weather in Paris?",
      maxRetries: 0,
      stopWhen: stepCountIs(3),
      tools: {
        get_weather: aiTool({
          description: "Weather in a city",
          inputSchema: jsonSchema<{ city: string }>(parameters),
          execute: async (input) => {
            calls.push(input);
            return TOOL_RESULT;
          },
        }),
      },
    };
    const text = stream ? await streamText(options).text : (await generateText(options)).text;
    expect(calls).toEqual(shape === "text" ? [] : [CITY_ARGS]);
    if (shape === "text") expect(text).toBe(TEXT_ANSWER);
    else expect(text).toContain(TOOL_RESULT.split(",")[0]!);
  });
});
