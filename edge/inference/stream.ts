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
const LF = 10;
const CR = 13;

/**
 * End (exclusive) of the first complete SSE event in `b` at or after `from`, or -1: a line feed followed by
 * an optional carriage return and a line feed (`/\r?\n\r?\n/` on the bytes).
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

/**
 * One chunk for the client out of the upstream's bytes (views, copied here: the reader's buffer is read into
 * again) and text SAM wrote, in order.
 */
function assemble(parts: (Uint8Array | string)[]): Uint8Array {
  if (parts.length === 1) {
    const only = parts[0]!;
    return typeof only === "string" ? encoder.encode(only) : only.slice();
  }
  const bytes: Uint8Array[] = [];
  let text = "";
  let size = 0;
  for (const p of parts) {
    if (typeof p === "string") {
      text += p;
      continue;
    }
    if (text !== "") {
      const encoded = encoder.encode(text);
      bytes.push(encoded);
      size += encoded.byteLength;
      text = "";
    }
    bytes.push(p);
    size += p.byteLength;
  }
  if (text !== "") {
    const encoded = encoder.encode(text);
    bytes.push(encoded);
    size += encoded.byteLength;
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const b of bytes) {
    all.set(b, at);
    at += b.byteLength;
  }
  return all;
}

/** The data of an SSE event: its `data:` lines joined by line feeds, or null when it has none. */
function dataOf(event: string): string | null {
  // Nearly every event is one `data:` line and the blank line after it: no split for those.
  const lf = event.indexOf("\n");
  const rest = event.length - lf - 1;
  if (lf > 0 && (rest === 1 || (rest === 2 && event.charCodeAt(lf + 1) === CR))) {
    if (!event.startsWith("data:")) return null;
    return event.slice(5, event.charCodeAt(lf - 1) === CR ? lf - 1 : lf).trimStart();
  }
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
  /** The bytes of an event not yet complete. */
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
   * than one per event), or null. An event left as it came goes out as the upstream's own bytes (decoding
   * and re-encoding it cost more than reading it); `bytes` is not kept: the caller may read into it again.
   */
  push(bytes: Uint8Array): Uint8Array | null {
    const pending = this.pending;
    const data = pending === null ? bytes : concat(pending, bytes);
    const tools = this.toolNames.size > 0;
    const out: (Uint8Array | string)[] = [];
    let start = 0;
    let sent = 0;
    // Bytes of `pending` were scanned already; only its last two could begin an event end.
    for (
      let end = eventEnd(data, pending === null ? 0 : Math.max(0, pending.byteLength - 2));
      end !== -1;
      end = eventEnd(data, start)
    ) {
      const event = utf8.decode(data.subarray(start, end));
      const instead = tools ? this.repair(event) : this.watch(event);
      if (instead !== null) {
        if (start > sent) out.push(data.subarray(sent, start));
        if (instead !== "") out.push(instead);
        sent = end;
      }
      start = end;
    }
    if (start > sent) out.push(data.subarray(sent, start));
    this.pending = start === data.byteLength ? null : data.slice(start);
    return out.length === 0 ? null : assemble(out);
  }

  /** The upstream body ended: release what was held and make sure `[DONE]` closes the stream. */
  end(): Uint8Array | null {
    const out: (Uint8Array | string)[] = [];
    const pending = this.pending;
    this.pending = null;
    if (pending !== null) {
      const event = utf8.decode(pending);
      const blank = event.trim() === "";
      if (this.toolNames.size > 0) {
        if (!blank) out.push(this.repair(event + "\n\n") ?? event + "\n\n");
      } else {
        const rewritten = blank ? null : this.watch(event + "\n\n");
        if (rewritten !== null) out.push(rewritten);
        else {
          out.push(pending);
          if (!blank) out.push(event.endsWith("\n") ? "\n" : "\n\n");
        }
      }
    }
    if (!this.sawDone) {
      for (const [index, st] of this.choices) {
        out.push(...this.release(st, index));
        if (st.sawToolCalls && !st.finished) out.push(this.chunk({ index, delta: {}, finish_reason: "tool_calls" }));
      }
      out.push("data: [DONE]\n\n");
      this.sawDone = true;
    }
    return out.length === 0 ? null : assemble(out);
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

  /** One upstream event in; the events to send in its place ("" for none), or null to send it as it came. */
  private repair(event: string): string | null {
    const { data, chunk } = this.parse(event);
    if (data === "[DONE]") {
      if (this.sawDone) return "";
      this.sawDone = true;
      const out: string[] = [];
      for (const [index, st] of this.choices) {
        out.push(...this.release(st, index));
        if (st.sawToolCalls && !st.finished) out.push(this.chunk({ index, delta: {}, finish_reason: "tool_calls" }));
      }
      return out.length === 0 ? null : out.join("") + event;
    }
    if (!chunk) return null;
    this.note(chunk);
    if (!Array.isArray(chunk.choices)) return null;
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
    if (before.length === 0) return changed ? sse(chunk) : null;
    return before.join("") + (changed ? sse(chunk) : event);
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
 * Bytes of the buffer a stream reads its upstream into, read after read (and stream after stream, see
 * `spareReadBuffers`). Under Deno a fetch body is a byte stream, and its default reader allocates a fresh
 * 64 KiB buffer for every read (a chunk of a few hundred bytes); that garbage cost more CPU per stream than
 * SAM's own work on the events.
 */
const READ_BUFFER_BYTES = 16 * 1024;

/**
 * Whether upstream bodies here are byte streams, learnt from the first: asking a stream that is not one for
 * a BYOB reader throws, and the exception cost ≈ 15 µs, more than the reader saves. Where the first body
 * was not one (Bun's fetch bodies never are) no later body is asked; where one was (Deno's fetch bodies),
 * every body is.
 */
let byobReads: "untried" | "work" | "never" = "untried";

/**
 * Read buffers of streams that ended, handed to the next streams: allocating one per stream still cost
 * ≈ 4 µs of CPU per stream (a zeroed 16 KiB buffer, and the garbage collection its external memory
 * prompts). A buffer comes back only from a clean end, when nothing refers to it any more.
 */
const spareReadBuffers: ArrayBuffer[] = [];
const MAX_SPARE_READ_BUFFERS = 64;

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
  if (byobReads !== "never") {
    try {
      byob = upstream.getReader({ mode: "byob" });
      byobReads = "work";
    } catch {
      if (byobReads === "untried") byobReads = "never";
    }
  }
  if (byob === null) reader = upstream.getReader();
  let buffer = new Uint8Array(
    byob === null ? new ArrayBuffer(0) : spareReadBuffers.pop() ?? new ArrayBuffer(READ_BUFFER_BYTES),
  );
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
            if (read.done) {
              chunk = null;
              if (read.value !== undefined && spareReadBuffers.length < MAX_SPARE_READ_BUFFERS) {
                spareReadBuffers.push(read.value.buffer);
              }
            } else {
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
