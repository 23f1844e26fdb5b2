/**
 * Streaming chat completions: upstream SSE bytes go to the client as they arrive. Without tools in the
 * request every chunk is forwarded untouched the moment it is read, and only watched (usage, `[DONE]`).
 * With tools, events are repaired where broken: text that starts a tool call is held back until it can be
 * told apart from prose, then sent as `tool_calls`; object `arguments`, missing ids and a `stop` finish
 * after tool calls are fixed. The stream always ends with `data: [DONE]`. Cancelling the returned stream
 * (a client that went away) cancels the upstream body, which aborts the upstream request.
 */
import { readUsage, type Usage } from "./normalise.ts";
import { parseTextToolCalls, repairToolCall, toolCallStart, toToolCalls } from "./tool-calls.ts";

export type StreamEnd = { usage: Usage | null; completionChars: number; completed: boolean };

type ChoiceState = {
  held: string;
  holding: "no" | "partial" | "tag" | "json";
  sawText: boolean;
  sawToolCalls: boolean;
  toolIndices: Set<number>;
  finished: boolean;
};

const encoder = new TextEncoder();
const EVENT_END = /\r?\n\r?\n/;

function dataOf(event: string): string | null {
  let data: string | null = null;
  for (const line of event.split(/\r?\n/)) {
    if (line.startsWith("data:")) data = (data === null ? "" : data + "\n") + line.slice(5).trimStart();
  }
  return data;
}

const sse = (value: unknown) => `data: ${JSON.stringify(value)}\n\n`;

export class StreamNormaliser {
  private readonly decoder = new TextDecoder();
  private buffer = "";
  private sawDone = false;
  private usage: Usage | null = null;
  private completionChars = 0;
  private template: { id: string; object: string; created: number; model: string };
  private readonly choices = new Map<number, ChoiceState>();

  constructor(private readonly toolNames: ReadonlySet<string>, private readonly fallbackSeed: string, model: string) {
    this.template = { id: fallbackSeed, object: "chat.completion.chunk", created: Math.floor(Date.now() / 1000), model };
  }

  /** Bytes in from upstream; bytes out to the client, now. */
  push(bytes: Uint8Array): Uint8Array[] {
    this.buffer += this.decoder.decode(bytes, { stream: true });
    if (this.toolNames.size === 0) {
      // Forward untouched; read the events only to learn usage and whether [DONE] came.
      this.drainEvents((event) => { this.watch(event); });
      return [bytes];
    }
    const out: string[] = [];
    this.drainEvents((event) => { out.push(...this.repair(event)); });
    return out.length === 0 ? [] : [encoder.encode(out.join(""))];
  }

  /** The upstream body ended: release what was held and make sure `[DONE]` closes the stream. */
  end(): Uint8Array[] {
    const tail = this.buffer + this.decoder.decode();
    this.buffer = "";
    const out: string[] = [];
    if (tail.trim() !== "") {
      const event = tail + "\n\n";
      if (this.toolNames.size === 0) {
        this.watch(event);
        out.push(tail.endsWith("\n") ? "\n" : "\n\n");
      } else out.push(...this.repair(event));
    }
    if (!this.sawDone) {
      for (const [index, st] of this.choices) {
        out.push(...this.release(st, index));
        if (st.sawToolCalls && !st.finished) out.push(this.chunk({ index, delta: {}, finish_reason: "tool_calls" }));
      }
      out.push("data: [DONE]\n\n");
      this.sawDone = true;
    }
    return out.length === 0 ? [] : [encoder.encode(out.join(""))];
  }

  /** An upstream failure after the stream began: an error event OpenAI clients raise, then `[DONE]`. */
  fail(message: string): Uint8Array {
    return encoder.encode(sse({ error: { message, type: "upstream_error", code: "upstream_stream_failed" } }) + "data: [DONE]\n\n");
  }

  result(completed: boolean): StreamEnd {
    return { usage: this.usage, completionChars: this.completionChars, completed };
  }

  private drainEvents(each: (event: string) => void): void {
    for (;;) {
      const m = EVENT_END.exec(this.buffer);
      if (!m) return;
      const end = m.index + m[0].length;
      each(this.buffer.slice(0, end));
      this.buffer = this.buffer.slice(end);
    }
  }

  private parse(event: string): { data: string | null; chunk: Record<string, unknown> | null } {
    const data = dataOf(event);
    if (data === null || data === "[DONE]") return { data, chunk: null };
    try {
      const chunk = JSON.parse(data);
      return { data, chunk: typeof chunk === "object" && chunk !== null ? chunk : null };
    } catch {
      return { data, chunk: null };
    }
  }

  private note(chunk: Record<string, unknown>): void {
    const usage = readUsage(chunk.usage);
    if (usage) this.usage = usage;
    if (typeof chunk.id === "string") this.template.id = chunk.id;
    if (typeof chunk.created === "number") this.template.created = chunk.created;
    if (typeof chunk.model === "string") this.template.model = chunk.model;
  }

  private watch(event: string): void {
    const { data, chunk } = this.parse(event);
    if (data === "[DONE]") this.sawDone = true;
    if (!chunk) return;
    this.note(chunk);
    if (!Array.isArray(chunk.choices)) return;
    for (const c of chunk.choices as { delta?: { content?: unknown } }[]) {
      if (typeof c.delta?.content === "string") this.completionChars += c.delta.content.length;
    }
  }

  private state(index: number): ChoiceState {
    let st = this.choices.get(index);
    if (!st) {
      st = { held: "", holding: "no", sawText: false, sawToolCalls: false, toolIndices: new Set(), finished: false };
      this.choices.set(index, st);
    }
    return st;
  }

  private chunk(choice: Record<string, unknown>): string {
    return sse({ ...this.template, choices: [choice] });
  }

  /** One upstream event in, the events to send in its place out. */
  private repair(event: string): string[] {
    const { data, chunk } = this.parse(event);
    if (data === "[DONE]") {
      if (this.sawDone) return [];
      this.sawDone = true;
      const out: string[] = [];
      for (const [index, st] of this.choices) {
        out.push(...this.release(st, index));
        if (st.sawToolCalls && !st.finished) out.push(this.chunk({ index, delta: {}, finish_reason: "tool_calls" }));
      }
      out.push(event);
      return out;
    }
    if (!chunk) return [event];
    this.note(chunk);
    if (!Array.isArray(chunk.choices)) return [event];
    const seed = this.template.id;
    const before: string[] = [];
    let changed = false;
    (chunk.choices as Record<string, unknown>[]).forEach((c, i) => {
      const index = typeof c.index === "number" ? c.index : i;
      const st = this.state(index);
      const delta = (typeof c.delta === "object" && c.delta !== null ? c.delta : {}) as Record<string, unknown>;
      if (Array.isArray(delta.tool_calls)) {
        (delta.tool_calls as Record<string, unknown>[]).forEach((tc, k) => {
          if (typeof tc.index !== "number") {
            tc.index = k;
            changed = true;
          }
          const position = tc.index as number;
          const partial = st.toolIndices.has(position);
          st.toolIndices.add(position);
          if (repairToolCall(tc, seed, index, position, partial)) changed = true;
          const args = (tc.function as { arguments?: unknown } | undefined)?.arguments;
          if (typeof args === "string") this.completionChars += args.length;
        });
        st.sawToolCalls = true;
      }
      if (delta.content === "") {
        // An empty first delta would make clients' accumulated content "" instead of null on a tool call.
        delete delta.content;
        changed = true;
      }
      if (typeof delta.content === "string" && delta.content !== "") {
        this.completionChars += delta.content.length;
        if (!st.sawToolCalls) {
          const now = this.feed(st, delta.content);
          if (now !== delta.content) {
            if (now === "") delete delta.content;
            else delta.content = now;
            changed = true;
          }
        }
      }
      if (c.finish_reason !== null && c.finish_reason !== undefined) {
        before.push(...this.release(st, index));
        st.finished = true;
        if (st.sawToolCalls && c.finish_reason !== "tool_calls") {
          c.finish_reason = "tool_calls";
          changed = true;
        }
      }
    });
    return [...before, changed ? sse(chunk) : event];
  }

  /** Streamed text for one choice: what may go out now; the rest is held while it could be a tool call. */
  private feed(st: ChoiceState, text: string): string {
    if (st.holding !== "no") {
      st.held += text;
      if (st.holding !== "partial") return "";
      const start = toolCallStart(st.held);
      if (start < 0) return this.letGo(st, st.held.length);
      const now = this.letGo(st, start);
      if (st.held.startsWith("<tool_call>")) st.holding = "tag";
      return now;
    }
    if (!st.sawText && /^\s*[[{]/.test(text)) {
      st.held = text;
      st.holding = "json";
      return "";
    }
    const start = toolCallStart(text);
    if (start < 0) {
      if (text.trim() !== "") st.sawText = true;
      return text;
    }
    const now = text.slice(0, start);
    if (now.trim() !== "") st.sawText = true;
    st.held = text.slice(start);
    st.holding = st.held.startsWith("<tool_call>") ? "tag" : "partial";
    return now;
  }

  /** Send the first `n` held characters as text; keeps holding the rest. */
  private letGo(st: ChoiceState, n: number): string {
    const now = st.held.slice(0, n);
    st.held = st.held.slice(n);
    if (st.held === "") st.holding = "no";
    if (now.trim() !== "") st.sawText = true;
    return now;
  }

  /** At the end of a choice: held text becomes tool calls if it is one, else it goes out as text. */
  private release(st: ChoiceState, index: number): string[] {
    if (st.held === "") return [];
    const text = st.held;
    st.held = "";
    st.holding = "no";
    const found = parseTextToolCalls(text, this.toolNames);
    if (!found) return [this.chunk({ index, delta: { content: text }, finish_reason: null })];
    st.sawToolCalls = true;
    const out: string[] = [];
    if (found.content !== null) out.push(this.chunk({ index, delta: { content: found.content }, finish_reason: null }));
    const calls = toToolCalls(found.calls, this.template.id, index, st.toolIndices.size)
      .map((call, k) => ({ index: st.toolIndices.size + k, ...call }));
    out.push(this.chunk({ index, delta: { role: "assistant", content: null, tool_calls: calls }, finish_reason: null }));
    return out;
  }
}

/**
 * The client-facing body: reads upstream as the client reads (no buffering ahead), and calls `onEnd` once,
 * whether the stream completed, failed, or the client went away.
 */
export function proxyStream(upstream: ReadableStream<Uint8Array>, normaliser: StreamNormaliser, onEnd: (end: StreamEnd) => void): ReadableStream<Uint8Array> {
  const reader = upstream.getReader();
  let ended = false;
  const finish = (completed: boolean) => {
    if (ended) return;
    ended = true;
    onEnd(normaliser.result(completed));
  };
  return new ReadableStream<Uint8Array>({
    // A pull that enqueues nothing is not called again (Deno, Bun and Node alike): keep reading until a read
    // yields bytes for the client (an upstream read may end mid-event) or the upstream ends.
    async pull(controller) {
      for (;;) {
        let read: Awaited<ReturnType<typeof reader.read>>;
        try {
          read = await reader.read();
        } catch {
          if (ended) return;
          controller.enqueue(normaliser.fail("the upstream model server broke off the stream; retry the request"));
          controller.close();
          finish(false);
          return;
        }
        if (read.done) {
          for (const bytes of normaliser.end()) controller.enqueue(bytes);
          controller.close();
          finish(true);
          return;
        }
        const out = normaliser.push(read.value);
        for (const bytes of out) controller.enqueue(bytes);
        if (out.length > 0) return;
      }
    },
    async cancel(reason) {
      finish(false);
      await reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
}
