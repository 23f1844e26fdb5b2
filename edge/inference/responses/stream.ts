/**
 * Chat-completion chunks in, Responses API events out. `ResponseEvents` keeps the output items as the
 * model produces them: text opens a `message` item with one `output_text` part, each tool call a
 * `function_call` item; an item is closed (`….done`, `response.output_item.done`) when the next one opens
 * or the model finishes. Both paths use it: the stream turns every upstream chunk into events, and a
 * non-streaming answer is fed as one chunk and only its final output is kept. It reads chunks after the
 * chat path's `StreamNormaliser` has repaired them (tool calls written as text, missing ids), and does
 * not rely on `role` being present.
 */
import { readUsage, type Usage } from "../normalise.ts";
import { estimateTokens } from "../usage.ts";
import {
  type OutputItem,
  type ResponseBase,
  responseObject,
  type ResponseStatus,
  responsesUsage,
  type ToolRef,
} from "./translate.ts";

const encoder = new TextEncoder();

const itemId = (prefix: string) => `${prefix}_${crypto.randomUUID().replaceAll("-", "")}`;

type Open = { item: OutputItem; index: number; text: string };

export type Finished = { response: ReturnType<typeof responseObject>; usage: Usage; estimated: boolean };

export class ResponseEvents {
  private seq = 0;
  readonly output: OutputItem[] = [];
  private open: Open | null = null;
  /** Function-call items by the chat tool call's index. */
  private readonly calls = new Map<number, Open>();
  private usage: Usage | null = null;
  private finishReason: string | null = null;
  completionChars = 0;

  /** `emit: false` builds only the final output (a non-streaming answer): no event is serialised. */
  constructor(
    private readonly base: ResponseBase,
    private readonly tools: ReadonlyMap<string, ToolRef>,
    private readonly promptChars: number,
    private readonly emit = true,
  ) {}

  private event(type: string, fields: Record<string, unknown>): string {
    if (!this.emit) return "";
    return `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: this.seq++, ...fields })}\n\n`;
  }

  /** `response.created` and `response.in_progress`: sent as soon as the upstream has answered. */
  start(): string {
    const response = responseObject(this.base, "in_progress", []);
    return this.event("response.created", { response }) + this.event("response.in_progress", { response });
  }

  /** One chat-completion chunk (or a whole completion's message as a delta); only choice 0 is read. */
  chunk(chunk: Record<string, unknown>): string {
    const usage = readUsage(chunk.usage);
    if (usage) this.usage = usage;
    const choices = Array.isArray(chunk.choices) ? chunk.choices as Record<string, unknown>[] : [];
    const choice = choices.find((c, i) => (typeof c.index === "number" ? c.index : i) === 0);
    if (!choice) return "";
    let out = "";
    const delta = (choice.delta ?? choice.message ?? {}) as Record<string, unknown>;
    if (typeof delta.content === "string" && delta.content !== "") out += this.text(delta.content);
    if (Array.isArray(delta.tool_calls)) {
      (delta.tool_calls as Record<string, unknown>[]).forEach((tc, k) => {
        out += this.toolCall(tc, k);
      });
    }
    if (typeof choice.finish_reason === "string") {
      this.finishReason = choice.finish_reason;
      out += this.closeOpen();
    }
    return out;
  }

  private text(piece: string): string {
    this.completionChars += piece.length;
    let out = "";
    if (this.open?.item.type !== "message") {
      out += this.closeOpen();
      const item: OutputItem = {
        type: "message",
        id: itemId("msg"),
        status: "in_progress",
        role: "assistant",
        content: [],
      };
      this.open = { item, index: this.output.length, text: "" };
      this.output.push(item);
      out += this.event("response.output_item.added", { output_index: this.open.index, item });
      out += this.event("response.content_part.added", {
        item_id: item.id,
        output_index: this.open.index,
        content_index: 0,
        part: { type: "output_text", text: "", annotations: [], logprobs: [] },
      });
    }
    const open = this.open!;
    open.text += piece;
    return out +
      this.event("response.output_text.delta", {
        item_id: open.item.id,
        output_index: open.index,
        content_index: 0,
        delta: piece,
        logprobs: [],
      });
  }

  private toolCall(tc: Record<string, unknown>, position: number): string {
    const index = typeof tc.index === "number" ? tc.index : position;
    const fn = (tc.function ?? {}) as { name?: unknown; arguments?: unknown };
    const args = typeof fn.arguments === "string" ? fn.arguments : "";
    this.completionChars += args.length;
    let out = "";
    let call = this.calls.get(index);
    if (!call) {
      out += this.closeOpen();
      const chatName = typeof fn.name === "string" ? fn.name : "";
      const ref = this.tools.get(chatName) ?? { name: chatName };
      const item: OutputItem = {
        type: "function_call",
        id: itemId("fc"),
        call_id: typeof tc.id === "string" ? tc.id : itemId("call"),
        name: ref.name,
        arguments: "",
        status: "in_progress",
      };
      if (ref.namespace) item.namespace = ref.namespace;
      call = { item, index: this.output.length, text: "" };
      this.calls.set(index, call);
      this.output.push(item);
      this.open = call;
      out += this.event("response.output_item.added", { output_index: call.index, item });
    }
    if (args !== "") {
      call.text += args;
      // A late piece of a call already closed still belongs to it, but its events were already sent.
      if (this.open === call) {
        out += this.event("response.function_call_arguments.delta", {
          item_id: call.item.id,
          output_index: call.index,
          delta: args,
        });
      } else call.item.arguments = call.text;
    }
    return out;
  }

  private closeOpen(): string {
    const open = this.open;
    if (!open) return "";
    this.open = null;
    const { item, index } = open;
    item.status = "completed";
    if (item.type === "message") {
      const part = { type: "output_text", text: open.text, annotations: [], logprobs: [] };
      item.content = [part];
      return this.event("response.output_text.done", {
        item_id: item.id,
        output_index: index,
        content_index: 0,
        text: open.text,
        logprobs: [],
      }) +
        this.event("response.content_part.done", { item_id: item.id, output_index: index, content_index: 0, part }) +
        this.event("response.output_item.done", { output_index: index, item });
    }
    item.arguments = open.text;
    return this.event("response.function_call_arguments.done", {
      item_id: item.id,
      output_index: index,
      arguments: open.text,
    }) +
      this.event("response.output_item.done", { output_index: index, item });
  }

  /** The model is done: close the last item and build the final response object. */
  finish(): { events: string; finished: Finished } {
    const events = this.closeOpen();
    const estimated = this.usage === null;
    const usage = this.usage ??
      { promptTokens: estimateTokens(this.promptChars), completionTokens: estimateTokens(this.completionChars) };
    const incomplete = this.finishReason === "length"
      ? "max_output_tokens"
      : this.finishReason === "content_filter"
      ? "content_filter"
      : null;
    const status: ResponseStatus = incomplete ? "incomplete" : "completed";
    const response = responseObject(this.base, status, this.output, { usage: responsesUsage(usage), incomplete });
    return { events, finished: { response, usage, estimated } };
  }

  /** `response.completed` (or `response.incomplete` when the model ran out of tokens). */
  completed(finished: Finished): string {
    return this.event(finished.response.status === "incomplete" ? "response.incomplete" : "response.completed", {
      response: finished.response,
    });
  }

  /** The upstream broke off: `response.failed`, which Responses clients raise as the error. */
  failed(message: string, code = "server_error"): string {
    this.closeOpen();
    const response = responseObject(this.base, "failed", this.output, { error: { code, message } });
    return this.event("response.failed", { response });
  }
}

function dataOf(event: string): string | null {
  let data: string | null = null;
  for (const line of event.split(/\r?\n/)) {
    if (line.startsWith("data:")) data = (data === null ? "" : data + "\n") + line.slice(5).trimStart();
  }
  return data;
}

const EVENT_END = /\r?\n\r?\n/;

/**
 * The client's Responses event stream over the chat path's (normalised) SSE stream, read as the client
 * reads (no pipe: a `pipeThrough` cost more CPU per stream under Deno than the translation). `onFinish`
 * runs before `response.completed` is sent (storing the response), so a client that continues from it at
 * once finds it. Cancelling the result cancels the chat stream and with it the upstream request.
 */
export function responsesStream(
  chat: ReadableStream<Uint8Array>,
  events: ResponseEvents,
  onFinish: (finished: Finished) => Promise<void>,
): ReadableStream<Uint8Array> {
  const reader = chat.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let failed = false;
  const handle = (event: string): string => {
    const data = dataOf(event);
    if (data === null || data === "[DONE]" || failed) return "";
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      return "";
    }
    if (typeof chunk !== "object" || chunk === null) return "";
    const err = (chunk as { error?: { message?: unknown; code?: unknown } }).error;
    if (err) {
      failed = true;
      const message = typeof err.message === "string" ? err.message : "the upstream model server failed";
      return events.failed(message, typeof err.code === "string" ? err.code : "server_error");
    }
    return events.chunk(chunk as Record<string, unknown>);
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(events.start()));
    },
    // A pull that enqueues nothing is not called again: read on until there is something to send.
    async pull(controller) {
      for (;;) {
        const read = await reader.read();
        if (read.done) {
          let out = buffer.trim() === "" ? "" : handle(buffer + decoder.decode());
          if (!failed) {
            const { events: closing, finished } = events.finish();
            await onFinish(finished);
            out += closing + events.completed(finished);
          }
          if (out !== "") controller.enqueue(encoder.encode(out));
          controller.close();
          return;
        }
        buffer += decoder.decode(read.value, { stream: true });
        let out = "";
        for (let m = EVENT_END.exec(buffer); m; m = EVENT_END.exec(buffer)) {
          const end = m.index + m[0].length;
          out += handle(buffer.slice(0, end));
          buffer = buffer.slice(end);
        }
        if (out !== "") {
          controller.enqueue(encoder.encode(out));
          return;
        }
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
