/**
 * A Responses API request as a chat-completions request, and the pieces of a response object, the way
 * LiteLLM's bridge maps them: input items become messages (`function_call` → an assistant `tool_calls`
 * entry, `function_call_output` → a `tool` message), `instructions` a leading system message, function
 * tools chat tools. What an open model behind a chat-completions API cannot do is dropped and named
 * (built-in tools, reasoning options, encrypted reasoning); namespace tools are flattened to
 * `<namespace>__<name>` and mapped back on the way out. Dropping is refused only where it would change
 * what the request means (a `tool_choice` that forces a dropped tool, background mode).
 */
import { HttpError } from "../../../shared/errors.ts";
import type { Usage } from "../normalise.ts";
import {
  check,
  type FunctionCallItem,
  FunctionTool,
  NamespaceTool,
  parseItem,
  readPart,
  type ResponsesRequest,
} from "./schema.ts";

export type ChatMessage = { role: string; [field: string]: unknown };
/** What the client calls a tool: its name and, for a tool inside a namespace, the namespace. */
export type ToolRef = { name: string; namespace?: string };

export type ChatPlan = {
  /** The body for the chat-completions upstream. */
  chat: Record<string, unknown>;
  /** The conversation without `instructions` (which do not carry over), kept for `previous_response_id`. */
  history: ChatMessage[];
  /** Chat tool name → the client's name for it. */
  tools: Map<string, ToolRef>;
  /** What was not forwarded, for the `x-sam-dropped` header. */
  dropped: string[];
  /** Namespaces whose functions were forwarded as `<namespace>__<name>`, for `x-sam-flattened`. */
  flattened: string[];
};

const flatName = (namespace: string, name: string) => `${namespace}__${name}`;

type Part = { type: string; [k: string]: unknown };

function partsOf(content: string | Part[], where: string, dropped: Set<string>) {
  if (typeof content === "string") return { text: content, images: [] as { url: string; detail?: string }[] };
  const texts: string[] = [];
  const images: { url: string; detail?: string }[] = [];
  content.forEach((raw, k) => {
    const part = readPart(raw, `${where}.content[${k}]`);
    if (!part) {
      dropped.add(`input:${raw.type}`);
      return;
    }
    if (part.type === "input_image") {
      if (part.image_url) images.push({ url: part.image_url, ...(part.detail ? { detail: part.detail } : {}) });
      else dropped.add("input:input_image(file_id)");
    } else texts.push(part.type === "refusal" ? part.refusal : part.text);
  });
  return { text: texts.join("\n"), images };
}

function callOf(item: FunctionCallItem) {
  const name = item.namespace ? flatName(item.namespace, item.name) : item.name;
  return { id: item.call_id, type: "function", function: { name, arguments: item.arguments } };
}

/** Input items as chat messages; consecutive function calls (and the text before them) form one assistant turn. */
function messagesOf(input: ResponsesRequest["input"], dropped: Set<string>): ChatMessage[] {
  if (typeof input === "string") return [{ role: "user", content: input }];
  const out: ChatMessage[] = [];
  input.forEach((raw, i) => {
    const item = parseItem(raw, i);
    const where = `input[${i}]`;
    switch (item.kind) {
      case "message": {
        const { text, images } = partsOf(item.content as string | Part[], where, dropped);
        // Open models' chat templates know system, not developer.
        const role = item.role === "developer" ? "system" : item.role;
        if (role === "user" && images.length > 0) {
          const parts: unknown[] = text === "" ? [] : [{ type: "text", text }];
          for (const img of images) parts.push({ type: "image_url", image_url: img });
          out.push({ role, content: parts });
        } else out.push({ role, content: text });
        return;
      }
      case "function_call": {
        const last = out[out.length - 1];
        if (last?.role === "assistant") {
          const calls = (last.tool_calls as unknown[] | undefined) ?? [];
          last.tool_calls = [...calls, callOf(item)];
          if (last.content === "") last.content = null;
        } else out.push({ role: "assistant", content: null, tool_calls: [callOf(item)] });
        return;
      }
      case "function_call_output": {
        const { text, images } = partsOf(item.output as string | Part[], `${where}.output`, dropped);
        // A chat `tool` message carries text only.
        if (images.length > 0) dropped.add("input:function_call_output.input_image");
        out.push({ role: "tool", tool_call_id: item.call_id, content: text });
        return;
      }
      case "other":
        // Reasoning items and built-in tool calls from an earlier turn: nothing an open model can read.
        dropped.add(`input:${item.type}`);
    }
  });
  return out;
}

function chatTool(t: FunctionTool, name: string) {
  const fn: Record<string, unknown> = { name };
  if (t.description) fn.description = t.description;
  if (t.parameters) fn.parameters = t.parameters;
  return { type: "function", function: fn };
}

/** Function tools as chat tools; namespaces flattened; built-in tools dropped. */
function toolsOf(
  req: ResponsesRequest,
  plan: { tools: Map<string, ToolRef>; flattened: string[] },
  dropped: Set<string>,
) {
  const out: unknown[] = [];
  (req.tools ?? []).forEach((raw, i) => {
    if (raw.type === "function") {
      const t = check(FunctionTool, raw, `tools[${i}]`);
      plan.tools.set(t.name, { name: t.name });
      out.push(chatTool(t, t.name));
    } else if (raw.type === "namespace") {
      const ns = check(NamespaceTool, raw, `tools[${i}]`);
      ns.tools.forEach((inner, k) => {
        if (inner.type !== "function") {
          dropped.add(inner.type);
          return;
        }
        const t = check(FunctionTool, inner, `tools[${i}].tools[${k}]`);
        const name = flatName(ns.name, t.name);
        plan.tools.set(name, { name: t.name, namespace: ns.name });
        out.push(chatTool(t, name));
      });
      plan.flattened.push(ns.name);
    } else dropped.add(raw.type);
  });
  return out;
}

function toolChoiceOf(req: ResponsesRequest, tools: Map<string, ToolRef>): unknown {
  const choice = req.tool_choice;
  if (choice === undefined || choice === null || typeof choice === "string") return choice ?? undefined;
  const forced = (name: string) => {
    if (!tools.has(name)) {
      throw new HttpError(
        400,
        `tool_choice forces the tool '${name}', which is not among the request's function tools`,
        { code: "invalid_tool_choice" },
      );
    }
    return { type: "function", function: { name } };
  };
  if (choice.type === "function") {
    const name = (choice as { name?: unknown }).name;
    if (typeof name !== "string") {
      throw new HttpError(400, 'tool_choice.name is required for {type: "function"}', { code: "invalid_tool_choice" });
    }
    return forced(name);
  }
  if (choice.type === "allowed_tools") return undefined; // narrowed in toChat, where the tool list is at hand
  throw new HttpError(
    400,
    `tool_choice forces the built-in tool '${choice.type}', which SAM's open models cannot run; use a function tool instead`,
    { code: "unsupported_tool_choice" },
  );
}

/** Apply `allowed_tools`: keep only the named functions (a namespace name keeps all of its functions). */
function allowedOnly(
  req: ResponsesRequest,
  tools: unknown[],
  refs: Map<string, ToolRef>,
): { tools: unknown[]; choice: string } | null {
  const choice = req.tool_choice;
  if (typeof choice !== "object" || choice === null || choice.type !== "allowed_tools") return null;
  const allowed = (choice as { tools: { type: string; name?: string }[]; mode: string }).tools;
  const keep = (chatName: string) => {
    const ref = refs.get(chatName)!;
    return allowed.some((a) => a.name === ref.name || (ref.namespace !== undefined && a.name === ref.namespace));
  };
  return {
    tools: tools.filter((t) => keep((t as { function: { name: string } }).function.name)),
    choice: (choice as { mode: string }).mode,
  };
}

export function toChat(req: ResponsesRequest, previous: ChatMessage[] | null): ChatPlan {
  if (req.background) {
    throw new HttpError(
      400,
      "background mode is not supported: SAM answers while the request is open; drop background or set it to false",
      { code: "unsupported_parameter" },
    );
  }
  if (req.conversation !== undefined && req.conversation !== null) {
    throw new HttpError(
      400,
      "conversation is not supported: continue a conversation with previous_response_id instead",
      { code: "unsupported_parameter" },
    );
  }
  if (req.prompt !== undefined && req.prompt !== null) {
    throw new HttpError(400, "prompt templates are not supported: send the prompt's text as instructions or input", {
      code: "unsupported_parameter",
    });
  }
  const dropped = new Set<string>();
  const plan: ChatPlan = { chat: {}, history: [], tools: new Map(), dropped: [], flattened: [] };
  plan.history = [...(previous ?? []), ...messagesOf(req.input, dropped)];

  let tools = toolsOf(req, plan, dropped);
  let toolChoice = toolChoiceOf(req, plan.tools);
  const narrowed = allowedOnly(req, tools, plan.tools);
  if (narrowed) {
    tools = narrowed.tools;
    toolChoice = narrowed.choice;
  }

  const messages: ChatMessage[] = [];
  if (req.instructions) messages.push({ role: "system", content: req.instructions });
  messages.push(...plan.history);
  const chat: Record<string, unknown> = { model: req.model, messages: leadingSystemMerged(messages) };
  if (tools.length > 0) {
    chat.tools = tools;
    if (toolChoice !== undefined) chat.tool_choice = toolChoice;
  }
  if (req.max_output_tokens != null) chat.max_tokens = req.max_output_tokens;
  if (req.temperature != null) chat.temperature = req.temperature;
  if (req.top_p != null) chat.top_p = req.top_p;
  const format = req.text?.format;
  if (format?.type === "json_object") chat.response_format = { type: "json_object" };
  if (format?.type === "json_schema") {
    const f = format as { name?: string; schema: unknown; strict?: boolean | null };
    chat.response_format = {
      type: "json_schema",
      json_schema: { name: f.name ?? "response", schema: f.schema, ...(f.strict != null ? { strict: f.strict } : {}) },
    };
  }
  if (req.stream) {
    chat.stream = true;
    chat.stream_options = { include_usage: true };
  }
  if (req.reasoning && (req.reasoning.effort != null || req.reasoning.summary != null)) dropped.add("reasoning");
  if (req.include && req.include.length > 0) dropped.add("include");
  plan.chat = chat;
  plan.dropped = [...dropped];
  return plan;
}

/**
 * Clients like Codex send several developer messages before the first user turn; many open models'
 * chat templates accept one system message, first. Join that leading run into one.
 */
function leadingSystemMerged(messages: ChatMessage[]): ChatMessage[] {
  let n = 0;
  while (n < messages.length && messages[n]!.role === "system" && typeof messages[n]!.content === "string") n++;
  if (n < 2) return messages;
  const content = messages.slice(0, n).map((m) => m.content as string).join("\n\n");
  return [{ role: "system", content }, ...messages.slice(n)];
}

/** Usage in the Responses API's shape. */
export function responsesUsage(u: Usage) {
  return {
    input_tokens: u.promptTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: u.completionTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: u.promptTokens + u.completionTokens,
  };
}

/** What is known before the model answers: the id and the request's settings, echoed as OpenAI does. */
export type ResponseBase = { id: string; created_at: number; model: string; request: ResponsesRequest };

export type OutputItem = Record<string, unknown> & { type: "message" | "function_call"; id: string };

export type ResponseStatus = "in_progress" | "completed" | "incomplete" | "failed";

export function responseObject(
  base: ResponseBase,
  status: ResponseStatus,
  output: OutputItem[],
  extra: {
    usage?: ReturnType<typeof responsesUsage> | null;
    error?: { code: string; message: string } | null;
    incomplete?: string | null;
  } = {},
) {
  const r = base.request;
  return {
    id: base.id,
    object: "response",
    created_at: base.created_at,
    status,
    background: false,
    error: extra.error ?? null,
    incomplete_details: extra.incomplete ? { reason: extra.incomplete } : null,
    instructions: r.instructions ?? null,
    max_output_tokens: r.max_output_tokens ?? null,
    metadata: r.metadata ?? {},
    model: base.model,
    output,
    parallel_tool_calls: r.parallel_tool_calls ?? true,
    previous_response_id: r.previous_response_id ?? null,
    reasoning: { effort: null, summary: null },
    store: r.store ?? true,
    temperature: r.temperature ?? null,
    text: { format: r.text?.format ?? { type: "text" } },
    tool_choice: r.tool_choice ?? "auto",
    tools: r.tools ?? [],
    top_p: r.top_p ?? null,
    truncation: "disabled",
    usage: extra.usage ?? null,
  };
}

/** This response's output as the assistant turn a later `previous_response_id` continues from. */
export function assistantMessage(output: OutputItem[]): ChatMessage | null {
  const text = output.filter((o) => o.type === "message")
    .map((o) => (o.content as { text: string }[]).map((p) => p.text).join("")).join("");
  const calls = output.filter((o) => o.type === "function_call").map((o) => ({
    id: o.call_id,
    type: "function",
    function: {
      name: o.namespace ? flatName(o.namespace as string, o.name as string) : o.name,
      arguments: o.arguments,
    },
  }));
  if (text === "" && calls.length === 0) return null;
  return calls.length > 0
    ? { role: "assistant", content: text === "" ? null : text, tool_calls: calls }
    : { role: "assistant", content: text };
}
