/**
 * A non-streaming chat completion from upstream, in OpenAI's shape. A well-formed answer goes back byte for
 * byte; only a broken one (tool calls as text, object `arguments`, missing ids or finish reason) is
 * rewritten. Also reads the token usage for the usage record.
 */
import { parseTextToolCalls, repairToolCall, toToolCalls } from "./tool-calls.ts";

export type Usage = { promptTokens: number; completionTokens: number };

export type Normalised = { body: string; usage: Usage | null; changed: boolean; completionChars: number };

type Choice = { index?: number; message?: Record<string, unknown>; finish_reason?: unknown };

export function readUsage(value: unknown): Usage | null {
  if (typeof value !== "object" || value === null) return null;
  const u = value as Record<string, unknown>;
  const p = u.prompt_tokens;
  const c = u.completion_tokens;
  if (typeof p !== "number" || typeof c !== "number") return null;
  return { promptTokens: p, completionTokens: c };
}

export function normaliseCompletion(text: string, toolNames: ReadonlySet<string>, fallbackSeed: string): Normalised {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { body: text, usage: null, changed: false, completionChars: 0 };
  }
  if (typeof parsed !== "object" || parsed === null) {
    return { body: text, usage: null, changed: false, completionChars: 0 };
  }
  const seed = typeof parsed.id === "string" ? parsed.id : fallbackSeed;
  let changed = false;
  let completionChars = 0;
  const choices = Array.isArray(parsed.choices) ? parsed.choices as Choice[] : [];
  choices.forEach((choice, i) => {
    const index = typeof choice.index === "number" ? choice.index : i;
    const message = choice.message;
    if (!message) return;
    let calls = Array.isArray(message.tool_calls) && message.tool_calls.length > 0
      ? message.tool_calls as Record<string, unknown>[]
      : null;
    if (calls) {
      calls.forEach((call, k) => {
        if (repairToolCall(call, seed, index, k, false)) changed = true;
      });
    } else if (toolNames.size > 0 && typeof message.content === "string") {
      const found = parseTextToolCalls(message.content, toolNames);
      if (found) {
        calls = toToolCalls(found.calls, seed, index);
        message.tool_calls = calls;
        message.content = found.content;
        changed = true;
      }
    }
    if (calls) {
      if (message.content === "" || message.content === undefined) {
        message.content = null;
        changed = true;
      }
      if (choice.finish_reason !== "tool_calls") {
        choice.finish_reason = "tool_calls";
        changed = true;
      }
      for (const c of calls) completionChars += String((c.function as { arguments?: unknown })?.arguments ?? "").length;
    }
    if (typeof message.content === "string") completionChars += message.content.length;
  });
  return {
    body: changed ? JSON.stringify(parsed) : text,
    usage: readUsage(parsed.usage),
    changed,
    completionChars,
  };
}
