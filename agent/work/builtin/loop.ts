/**
 * The built-in coding agent: a compact tool-calling loop with the `openai` client against the edge's `/v1`
 * (authenticated with the task's inference token). Each round the model either calls tools — run, results
 * fed back — or answers without tools, which is the final summary. A step limit bounds the rounds.
 */
import OpenAI from "openai";
import type { ChatCompletionMessageParam } from "openai/resources/chat/completions";
import { TOOL_SPECS, type ToolBox } from "./tools.ts";
import { REQUEST_TIMEOUTS } from "../../../shared/timeouts.ts";

export type BuiltinInput = {
  baseUrl: string;
  apiKey: string;
  model: string;
  prompt: string;
  tools: ToolBox;
  maxSteps: number;
  /** One line per step for the task log (stream "system"). */
  log: (line: string) => void;
  signal?: AbortSignal;
};

export type BuiltinOutcome = { ok: true; summary: string; steps: number } | { ok: false; error: string; steps: number };

const SYSTEM = `You are a coding agent working in a repository checked out in your current directory.
Use the tools to inspect and change files and to run commands; paths are relative to the workspace root.
When the task is done, reply without calling tools: a short summary of what you changed and why.`;

function short(text: string, max = 200): string {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length > max ? `${one.slice(0, max)}…` : one;
}

/** Backoff before each retry of a transient failure. */
const RETRIES = [500, 2_000];

/**
 * A blip worth retrying: a lost connection, a timeout, a rate limit, a gateway error. A 503 is not one —
 * the edge answers 503 when no upstream is configured, and that must reach the user at once.
 */
function isTransient(err: unknown): boolean {
  if (err instanceof OpenAI.APIConnectionError) return true;
  return err instanceof OpenAI.APIError && [408, 429, 500, 502, 504].includes(err.status ?? 0);
}

/** The upstream's own message (e.g. the edge's 503 "no inference upstream is configured…"). */
export function inferenceError(err: unknown): string {
  if (err instanceof OpenAI.APIError) {
    const body = err.error as { message?: string; error?: { message?: string } } | undefined;
    const msg = body?.error?.message ?? body?.message ?? err.message;
    return err.status ? `inference failed (${err.status}): ${msg}` : `inference failed: ${msg}`;
  }
  return `inference failed: ${(err as Error).message}`;
}

export async function runBuiltinAgent(input: BuiltinInput): Promise<BuiltinOutcome> {
  const client = new OpenAI({
    baseURL: input.baseUrl,
    apiKey: input.apiKey,
    maxRetries: 0,
    timeout: REQUEST_TIMEOUTS.builtinModelCall.ms,
  });
  const messages: ChatCompletionMessageParam[] = [
    { role: "system", content: SYSTEM },
    { role: "user", content: input.prompt },
  ];
  for (let step = 1; step <= input.maxSteps; step++) {
    if (input.signal?.aborted) return { ok: false, error: "cancelled", steps: step - 1 };
    let completion: OpenAI.Chat.Completions.ChatCompletion | undefined;
    for (let attempt = 0; !completion; attempt++) {
      try {
        completion = await client.chat.completions.create(
          { model: input.model, messages, tools: TOOL_SPECS, tool_choice: "auto" },
          { signal: input.signal },
        );
      } catch (err) {
        if (input.signal?.aborted) return { ok: false, error: "cancelled", steps: step - 1 };
        if (attempt >= RETRIES.length || !isTransient(err)) {
          return { ok: false, error: inferenceError(err), steps: step - 1 };
        }
        input.log(`step ${step}: ${inferenceError(err)}; retrying`);
        await Bun.sleep(RETRIES[attempt]!);
      }
    }
    const message = completion.choices[0]?.message;
    if (!message) return { ok: false, error: "inference failed: the model returned no choices", steps: step };
    const calls = (message.tool_calls ?? []).filter((c) => c.type === "function");
    if (calls.length === 0) {
      const summary = (message.content ?? "").trim() || "(the model ended without a summary)";
      input.log(`step ${step}: done`);
      return { ok: true, summary, steps: step };
    }
    messages.push({ role: "assistant", content: message.content ?? null, tool_calls: calls });
    if (message.content?.trim()) input.log(`step ${step}: ${short(message.content)}`);
    for (const call of calls) {
      input.log(`step ${step}: ${call.function.name} ${short(call.function.arguments, 160)}`);
      const result = await input.tools.call(call.function.name, call.function.arguments, input.signal);
      input.log(`step ${step}: → ${short(result.split("\n")[0] ?? "", 160)}`);
      messages.push({ role: "tool", tool_call_id: call.id, content: result });
    }
  }
  return {
    ok: false,
    error: `step limit reached: the model made ${input.maxSteps} rounds of tool calls without a final answer`,
    steps: input.maxSteps,
  };
}
