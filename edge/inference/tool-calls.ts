/**
 * Tool calls of open models, brought into OpenAI's shape. Models on Workers AI sometimes answer a tool call
 * as text (Hermes `<tool_call>{…}</tool_call>`, or a bare `{"name", "arguments"}` object), with `arguments`
 * as an object, or without ids. These helpers detect and repair exactly that, and nothing else.
 */
import { parseJsonText } from "../../shared/validate.ts";

export type ToolCall = { id: string; type: "function"; function: { name: string; arguments: string } };

/** A stable tool-call id: the same seed (completion id, choice, position) always yields the same id. */
export function toolCallId(seed: string, choice: number, position: number): string {
  // FNV-1a, 64-bit as two 32-bit halves: deterministic, fast, no async crypto needed.
  const text = `${seed}:${choice}:${position}`;
  let h1 = 0x811c9dc5;
  let h2 = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c, 0x01000193 + i) >>> 0;
  }
  return `call_${h1.toString(16).padStart(8, "0")}${h2.toString(16).padStart(8, "0")}`;
}

/** `arguments` as the JSON string OpenAI clients parse, whatever form the model gave. */
export function argumentsString(args: unknown): string {
  if (typeof args === "string") return args;
  if (args === undefined || args === null) return "{}";
  return JSON.stringify(args);
}

type Named = { name: string; arguments: string };

function asCall(value: unknown): Named | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const o = value as Record<string, unknown>;
  const fn = typeof o.function === "object" && o.function !== null ? o.function as Record<string, unknown> : o;
  const name = fn.name;
  if (typeof name !== "string" || name === "") return null;
  const args = "arguments" in fn ? fn.arguments : "parameters" in fn ? fn.parameters : undefined;
  if (args === undefined && Object.keys(fn).some((k) => k !== "name")) return null;
  return { name, arguments: argumentsString(args) };
}

const HERMES = /<tool_call>\s*([\s\S]*?)\s*(?:<\/tool_call>|$)/g;

/**
 * Tool calls written as text, or null when the text is an ordinary answer. `content` is what remains
 * of the text once the calls are taken out (null when nothing does). A bare JSON object counts only when
 * it names one of the request's tools, so a JSON answer to a JSON question is left alone.
 */
export function parseTextToolCalls(
  text: string,
  toolNames: ReadonlySet<string>,
): { calls: Named[]; content: string | null } | null {
  if (text.includes("<tool_call>")) {
    const calls: Named[] = [];
    for (const m of text.matchAll(HERMES)) {
      const call = asCall(parseJsonText(m[1]!));
      if (!call) return null;
      calls.push(call);
    }
    if (calls.length === 0) return null;
    const rest = text.replace(HERMES, "").trim();
    return { calls, content: rest === "" ? null : rest };
  }
  const trimmed = text.trim();
  if (!trimmed.startsWith("{") && !trimmed.startsWith("[")) return null;
  const parsed = parseJsonText(trimmed);
  const items = Array.isArray(parsed) ? parsed : [parsed];
  if (items.length === 0) return null;
  const calls: Named[] = [];
  for (const item of items) {
    const call = asCall(item);
    if (!call || !toolNames.has(call.name)) return null;
    calls.push(call);
  }
  return { calls, content: null };
}

const TAG = "<tool_call>";

/**
 * Where, in streamed text, a tool call may begin: the index from which text must be held back rather
 * than forwarded (a complete or partial `<tool_call>` tag), or -1 when all of it can go out now.
 */
export function toolCallStart(text: string): number {
  const full = text.indexOf(TAG);
  if (full >= 0) return full;
  // A partial tag at the end starts at the last "<" (the tag has no other), and what follows it is shorter
  // than the tag and begins it.
  const lt = text.lastIndexOf("<");
  if (lt < 0 || text.length - lt >= TAG.length) return -1;
  return TAG.startsWith(text.slice(lt)) ? lt : -1;
}

/** Repair one tool call in place: id, type and a string `arguments`. Returns whether anything changed. */
export function repairToolCall(
  call: Record<string, unknown>,
  seed: string,
  choice: number,
  position: number,
  partial: boolean,
): boolean {
  let changed = false;
  if (!partial && (typeof call.id !== "string" || call.id === "")) {
    call.id = toolCallId(seed, choice, position);
    changed = true;
  }
  if (!partial && call.type !== "function") {
    call.type = "function";
    changed = true;
  }
  const fn = call.function as Record<string, unknown> | undefined;
  if (fn && "arguments" in fn && typeof fn.arguments !== "string") {
    fn.arguments = argumentsString(fn.arguments);
    changed = true;
  }
  return changed;
}

/** Named calls as OpenAI `tool_calls`, with stable ids. */
export function toToolCalls(calls: Named[], seed: string, choice: number, offset = 0): ToolCall[] {
  return calls.map((c, i) => ({
    id: toolCallId(seed, choice, offset + i),
    type: "function",
    function: { name: c.name, arguments: c.arguments },
  }));
}
