import { describe, expect, test } from "bun:test";
import { parseTextToolCalls, toolCallId, toolCallStart } from "./tool-calls.ts";

const tools = new Set(["get_weather", "read_file"]);

describe("tool calls written as text", () => {
  test("Hermes tags, one or several, with text around them", () => {
    expect(parseTextToolCalls('<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>', tools))
      .toEqual({ calls: [{ name: "get_weather", arguments: '{"city":"Oslo"}' }], content: null });
    const two = parseTextToolCalls(
      'Let me check.\n<tool_call>\n{"name":"read_file","arguments":"{\\"path\\":\\"a\\"}"}\n</tool_call>\n<tool_call>{"name":"get_weather","arguments":{}}</tool_call>',
      tools,
    );
    expect(two).toEqual({
      calls: [{ name: "read_file", arguments: '{"path":"a"}' }, { name: "get_weather", arguments: "{}" }],
      content: "Let me check.",
    });
  });

  test("bare JSON objects and arrays, with arguments or parameters", () => {
    expect(parseTextToolCalls(' {"name": "get_weather", "parameters": {"city": "Rome"}} ', tools)?.calls).toEqual([{
      name: "get_weather",
      arguments: '{"city":"Rome"}',
    }]);
    expect(
      parseTextToolCalls('[{"type":"function","function":{"name":"read_file","arguments":{"path":"x"}}}]', tools)
        ?.calls,
    ).toEqual([{ name: "read_file", arguments: '{"path":"x"}' }]);
  });

  test("ordinary answers are left alone", () => {
    for (
      const text of [
        "Hello",
        '{"name": "Bob", "age": 3}',
        '{"name": "unknown_tool", "arguments": {}}',
        "{not json",
        "<tool_call>not json</tool_call>",
        "[]",
      ]
    ) {
      expect(parseTextToolCalls(text, tools)).toBeNull();
    }
  });

  test("ids are stable for the same seed and distinct across positions", () => {
    expect(toolCallId("chatcmpl-1", 0, 0)).toBe(toolCallId("chatcmpl-1", 0, 0));
    expect(new Set([toolCallId("a", 0, 0), toolCallId("a", 0, 1), toolCallId("a", 1, 0), toolCallId("b", 0, 0)]).size)
      .toBe(4);
  });

  test("where a streamed tool call may start", () => {
    expect(toolCallStart("hello")).toBe(-1);
    expect(toolCallStart("hello <tool")).toBe(6);
    expect(toolCallStart("a<tool_call>{")).toBe(1);
    expect(toolCallStart("x <")).toBe(2);
    expect(toolCallStart("<b>")).toBe(-1);
  });
});
