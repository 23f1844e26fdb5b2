/**
 * Streaming chat completions: upstream SSE bytes go to the client as they arrive. Without tools in the
 * request every complete event is forwarded untouched the moment its last byte is read, and only watched
 * (usage, `[DONE]`); the one rewrite is `role: "assistant"` added to a choice's first delta when upstream
 * left it out (Workers AI does; openai-node and LangChain need it). A partial event waits for its end: no
 * SSE client can act on half an event, and an error event appended later must not land inside one.
 * With tools, events are repaired where broken: text that starts a tool call is held back until it can be
 * told apart from prose, then sent as `tool_calls`; object `arguments`, missing ids and a `stop` finish
 * after tool calls are fixed. The stream always ends with `data: [DONE]`. Cancelling the returned stream
 * (a client that went away) cancels the upstream body, which aborts the upstream request.
 */
import type { Deadlines } from "./timer-queue.ts";
import { readUsage, type Usage } from "./normalise.ts";
import { parseTextToolCalls, repairToolCall, toolCallStart, toToolCalls } from "./tool-calls.ts";

export type StreamEnd = { usage: Usage | null; completionChars: number; completed: boolean };

type ChoiceState = {
  roleSent: boolean;
  held: string;
  holding: "no" | "partial" | "tag" | "json";
  sawText: boolean;
  sawToolCalls: boolean;
  toolIndices: Set<number>;
  finished: boolean;
};

const encoder = new TextEncoder();
const EVENT_END = /\r?\n\r?\n/;
const LF = 10;
const CR = 13;

/**
 * End (exclusive) of the first complete SSE event in `b` at or after `from`, or -1: the bytes form of
 * `EVENT_END`, a line feed followed by an optional carriage return and a line feed.
 */
function eventEnd(b: Uint8Array, from: number): number {
  for (let i = b.indexOf(LF, from); i !== -1; i = b.indexOf(LF, i + 1)) {
    if (b[i + 1] === LF) return i + 2;
    if (b[i + 1] === CR && b[i + 2] === LF) return i + 3;
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const all = new Uint8Array(a.byteLength + b.byteLength);
  all.set(a);
  all.set(b, a.byteLength);
  return all;
}

function joinAll(parts: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const p of parts) size += p.byteLength;
  const all = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.byteLength;
  }
  return all;
}

function dataOf(event: string): string | null {
  let data: string | null = null;
  for (const line of event.split(/\r?\n/)) {
    if (line.startsWith("data:")) data = (data === null ? "" : data + "\n") + line.slice(5).trimStart();
  }
  return data;
}

const sse = (value: unknown) => `data: ${JSON.stringify(value)}\n\n`;

/** Stateless (no `stream` option): complete events never split a UTF-8 sequence. */
const utf8 = new TextDecoder();

/** Give a choice's delta `role: "assistant"` (first, as OpenAI orders it) if it has none; true if changed. */
function withRole(choice: Record<string, unknown>): boolean {
  const delta = choice.delta;
  if (typeof delta === "object" && delta !== null && "role" in delta) return false;
  choice.delta = { role: "assistant", ...(typeof delta === "object" && delta !== null ? delta : {}) };
  return true;
}

export class StreamNormaliser {
  private readonly decoder = new TextDecoder();
  private buffer = "";
  /** Without tools: the bytes of an event not yet complete. */
  private pending: Uint8Array | null = null;
  /** Without tools: choice indices whose first delta went out. */
  private readonly seenChoices = new Set<number>();
  private sawDone = false;
  private usage: Usage | null = null;
  private completionChars = 0;
  private template: { id: string; object: string; created: number; model: string };
  private readonly choices = new Map<number, ChoiceState>();

  constructor(private readonly toolNames: ReadonlySet<string>, private readonly fallbackSeed: string, model: string) {
    this.template = {
      id: fallbackSeed,
      object: "chat.completion.chunk",
      created: Math.floor(Date.now() / 1000),
      model,
    };
  }

  /**
   * Bytes in from upstream; the bytes to send the client now, as one chunk (one write to the client rather
   * than one per event), or null. `bytes` is not kept nor returned: the caller may read into it again.
   */
  push(bytes: Uint8Array): Uint8Array | null {
    if (this.toolNames.size === 0) return this.passThrough(bytes);
    this.buffer += this.decoder.decode(bytes, { stream: true });
    const out: string[] = [];
    this.drainEvents((event) => {
      out.push(...this.repair(event));
    });
    return out.length === 0 ? null : encoder.encode(out.join(""));
  }

  /** The upstream body ended: release what was held and make sure `[DONE]` closes the stream. */
  end(): Uint8Array | null {
    let tail: Uint8Array | null = null;
    const text: string[] = [];
    if (this.toolNames.size === 0) {
      const pending = this.pending;
      this.pending = null;
      if (pending !== null) {
        const event = utf8.decode(pending);
        const rewritten = event.trim() === "" ? null : this.watch(event + "\n\n");
        if (rewritten !== null) text.push(rewritten);
        else {
          tail = pending;
          if (event.trim() !== "") text.push(event.endsWith("\n") ? "\n" : "\n\n");
        }
      }
    } else {
      const tail = this.buffer + this.decoder.decode();
      this.buffer = "";
      if (tail.trim() !== "") text.push(...this.repair(tail + "\n\n"));
    }
    if (!this.sawDone) {
      for (const [index, st] of this.choices) {
        text.push(...this.release(st, index));
        if (st.sawToolCalls && !st.finished) text.push(this.chunk({ index, delta: {}, finish_reason: "tool_calls" }));
      }
      text.push("data: [DONE]\n\n");
      this.sawDone = true;
    }
    if (text.length === 0) return tail;
    const more = encoder.encode(text.join(""));
    return tail === null ? more : concat(tail, more);
  }

  /**
   * Without tools: complete events go out as the upstream's own bytes, except a choice's first delta without
   * a role, which is re-encoded with one. The bytes are copied out of `bytes`, which the caller reuses.
   */
  private passThrough(bytes: Uint8Array): Uint8Array | null {
    const pending = this.pending;
    const data = pending === null ? bytes : concat(pending, bytes);
    const out: Uint8Array[] = [];
    let start = 0;
    let sent = 0;
    // Bytes of `pending` were scanned already; only its last two could begin an event end.
    for (
      let end = eventEnd(data, pending === null ? 0 : Math.max(0, pending.byteLength - 2));
      end !== -1;
      end = eventEnd(data, start)
    ) {
      const rewritten = this.watch(utf8.decode(data.subarray(start, end)));
      if (rewritten !== null) {
        if (start > sent) out.push(data.subarray(sent, start));
        out.push(encoder.encode(rewritten));
        sent = end;
      }
      start = end;
    }
    if (start > sent) out.push(data.subarray(sent, start));
    this.pending = start === data.byteLength ? null : data.slice(start);
    if (out.length === 0) return null;
    // One part: a copy of it. `slice`, not `subarray`: the bytes read go back into the reader's buffer.
    return out.length === 1 ? out[0]!.slice() : joinAll(out);
  }

  /** An upstream failure after the stream began: an error event OpenAI clients raise, then `[DONE]`. */
  fail(message: string): Uint8Array {
    return encoder.encode(
      sse({ error: { message, type: "upstream_error", code: "upstream_stream_failed" } }) + "data: [DONE]\n\n",
    );
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

  /** Read an event passed through; returns it re-encoded when a choice's first delta needs a role, else null. */
  private watch(event: string): string | null {
    const { data, chunk } = this.parse(event);
    if (data === "[DONE]") this.sawDone = true;
    if (!chunk) return null;
    this.note(chunk);
    if (!Array.isArray(chunk.choices)) return null;
    let changed = false;
    (chunk.choices as Record<string, unknown>[]).forEach((c, i) => {
      const delta = c.delta as { content?: unknown; role?: unknown } | undefined;
      if (typeof delta?.content === "string") this.completionChars += delta.content.length;
      const index = typeof c.index === "number" ? c.index : i;
      if (this.seenChoices.has(index)) return;
      this.seenChoices.add(index);
      if (withRole(c)) changed = true;
    });
    return changed ? sse(chunk) : null;
  }

  private state(index: number): ChoiceState {
    let st = this.choices.get(index);
    if (!st) {
      st = {
        roleSent: false,
        held: "",
        holding: "no",
        sawText: false,
        sawToolCalls: false,
        toolIndices: new Set(),
        finished: false,
      };
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
      if (!st.roleSent) {
        st.roleSent = true;
        if (withRole(c)) changed = true;
      }
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
    out.push(
      this.chunk({ index, delta: { role: "assistant", content: null, tool_calls: calls }, finish_reason: null }),
    );
    return out;
  }
}

/** What `proxyStream` watches besides the bytes: a per-read idle deadline and the message it ends with. */
export type IdleWatch = { deadlines: Deadlines; message: string };

/**
 * Bytes of the buffer a stream reads its upstream into, one per stream, read after read. Under Deno a fetch
 * body is a byte stream, and its default reader allocates a fresh 64 KiB buffer for every read (a chunk of
 * a few hundred bytes); that garbage cost more CPU per stream than SAM's own work on the events.
 */
const READ_BUFFER_BYTES = 16 * 1024;

/**
 * The client-facing body: reads upstream as the client reads (no buffering ahead), and calls `onEnd` once,
 * whether the stream completed, failed, went idle, or the client went away. An upstream that sends no byte
 * within the idle deadline is cancelled and the client gets an error event and `[DONE]` instead of a hang.
 */
export function proxyStream(
  upstream: ReadableStream<Uint8Array>,
  normaliser: StreamNormaliser,
  onEnd: (end: StreamEnd) => void,
  idle?: IdleWatch,
): ReadableStream<Uint8Array> {
  // A byte stream (Deno's fetch bodies) is read into the stream's own buffer; any other (Bun's, a JS
  // stream) cannot be, and is read as it comes.
  let byob: ReadableStreamBYOBReader | null = null;
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  try {
    byob = upstream.getReader({ mode: "byob" });
  } catch {
    reader = upstream.getReader();
  }
  let buffer = new Uint8Array(byob === null ? 0 : READ_BUFFER_BYTES);
  let ended = false;
  let wentIdle = false;
  const finish = (completed: boolean) => {
    if (ended) return;
    ended = true;
    onEnd(normaliser.result(completed));
  };
  const cancelUpstream = (reason: unknown) => (byob ?? reader!).cancel(reason);
  const onIdle = () => {
    wentIdle = true;
    // A pending read then resolves as done; `wentIdle` tells it apart from a clean end.
    cancelUpstream(new DOMException("upstream idle", "TimeoutError")).catch(() => {});
  };
  const fail = (controller: ReadableStreamDefaultController<Uint8Array>, message: string) => {
    controller.enqueue(normaliser.fail(message));
    controller.close();
    finish(false);
  };
  return new ReadableStream<Uint8Array>({
    // A pull that enqueues nothing is not called again (Deno, Bun and Node alike): keep reading until a read
    // yields bytes for the client (an upstream read may end mid-event) or the upstream ends.
    async pull(controller) {
      for (;;) {
        /** The bytes read, or null at the upstream's end. */
        let chunk: Uint8Array | null;
        const stopWatch = idle?.deadlines.add(onIdle);
        try {
          if (byob === null) {
            const read = await reader!.read();
            chunk = read.done ? null : read.value;
          } else {
            const read = await byob.read(buffer);
            if (read.done) chunk = null;
            else {
              chunk = read.value;
              // The read hands the buffer back (transferred): the next read goes into it again.
              buffer = new Uint8Array(read.value.buffer);
            }
          }
        } catch {
          if (ended) return;
          return fail(
            controller,
            wentIdle ? idle!.message : "the upstream model server broke off the stream; retry the request",
          );
        } finally {
          stopWatch?.();
        }
        if (wentIdle) return ended ? undefined : fail(controller, idle!.message);
        if (chunk === null) {
          const tail = normaliser.end();
          if (tail !== null) controller.enqueue(tail);
          controller.close();
          finish(true);
          return;
        }
        const out = normaliser.push(chunk);
        if (out !== null) {
          controller.enqueue(out);
          return;
        }
      }
    },
    async cancel(reason) {
      finish(false);
      await cancelUpstream(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
}
