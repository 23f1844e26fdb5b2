/**
 * Recorded upstream SSE streams and a property over where TCP splits them: whatever the byte boundaries of
 * the upstream's reads, a client of SAM's `/v1/chat/completions` must receive exactly the events it gets
 * from the same stream unsplit. Runtime-neutral: the Bun and Deno tests serve `SplitUpstream.fetch` and
 * SAM's app with their own server and call `checkSplitProperty`.
 */
import fc from "fast-check";

type Chunk = Record<string, unknown>;

const base = { id: "chatcmpl-rec", object: "chat.completion.chunk", created: 1_700_000_000, model: "m" };
const ev = (choices: Chunk[], extra: Chunk = {}) => ({ ...base, choices, ...extra });
const c0 = (delta: Chunk, finish: string | null = null, index = 0) => ({ index, delta, finish_reason: finish });
const usageOnly = ev([], { usage: { prompt_tokens: 12, completion_tokens: 8, total_tokens: 20 } });
const lines = (chunks: unknown[], eol = "\n") =>
  chunks.map((c) => `data: ${JSON.stringify(c)}${eol}${eol}`).join("") + `data: [DONE]${eol}${eol}`;

export type Recorded = { name: string; sse: string; tools: string[] };

/** Streams as Workers AI and OpenAI-compatible servers send them; most omit `role`, as Workers AI does. */
export const RECORDED: readonly Recorded[] = [
  {
    name: "text, no role, multi-byte characters, usage-only final chunk",
    sse: lines([
      ev([c0({ content: "Grüße, " })]),
      ev([c0({ content: "wörld 🌍 — ok" })]),
      ev([c0({}, "stop")]),
      usageOnly,
    ]),
    tools: [],
  },
  {
    name: "text with tools offered (the repairing path), no role",
    sse: lines([
      ev([c0({ content: "Plain answer — " })]),
      ev([c0({ content: "naïve café 🍵" })]),
      ev([c0({}, "stop")]),
      usageOnly,
    ]),
    tools: ["read_file"],
  },
  {
    name: "native tool calls, arguments streamed",
    sse: lines([
      ev([
        c0({
          role: "assistant",
          tool_calls: [{ index: 0, id: "call_a", type: "function", function: { name: "read_file", arguments: "" } }],
        }),
      ]),
      ev([c0({ tool_calls: [{ index: 0, function: { arguments: '{"path": "é' } }] })]),
      ev([c0({ tool_calls: [{ index: 0, function: { arguments: '.txt"}' } }] })]),
      ev([c0({}, "tool_calls")]),
      usageOnly,
    ]),
    tools: ["read_file"],
  },
  {
    name: "Hermes <tool_call> text",
    sse: lines([
      ev([c0({ content: "Let me look. " })]),
      ev([c0({ content: '<tool_call>{"name": "read_file", ' })]),
      ev([c0({ content: '"arguments": {"path": "ü.md"}}</tool_call>' })]),
      ev([c0({}, "stop")]),
    ]),
    tools: ["read_file"],
  },
  {
    name: "bare JSON tool call",
    sse: lines([
      ev([c0({ content: '{"name": "read_file", "arguments": ' })]),
      ev([c0({ content: '{"path": "a.ts"}}' })]),
      ev([c0({}, "stop")]),
      usageOnly,
    ]),
    tools: ["read_file"],
  },
  {
    name: "two choices, the second starting later",
    sse: lines([
      ev([c0({ content: "one " })]),
      ev([c0({ content: "two " }, null, 1)]),
      ev([c0({ content: "ß" }), c0({ content: "∂" }, null, 1)]),
      ev([c0({}, "stop"), c0({}, "stop", 1)]),
      usageOnly,
    ]),
    tools: [],
  },
  {
    name: "\\r\\n line ends",
    sse: lines(
      [ev([c0({ content: "crlf " })]), ev([c0({ content: "lines ✓" })]), ev([c0({}, "stop")]), usageOnly],
      "\r\n",
    ),
    tools: [],
  },
  {
    name: "\\r\\n line ends with a Hermes tool call",
    sse: lines([
      ev([c0({ content: '<tool_call>{"name": "read_file", "arguments": {}}</tool_call>' })]),
      ev([c0({}, "stop")]),
    ], "\r\n"),
    tools: ["read_file"],
  },
];

/** The data of every complete SSE event in `text`, JSON-parsed (`[DONE]` stays a string). */
export function sseData(text: string): unknown[] {
  const out: unknown[] = [];
  const events = text.split(/\r?\n\r?\n/);
  events.pop();
  for (const event of events) {
    const data = event.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart());
    if (data.length === 0) continue;
    const joined = data.join("\n");
    out.push(joined === "[DONE]" ? joined : JSON.parse(joined));
  }
  return out;
}

/** The upstream events as the client must see them: each choice's first delta with `role: "assistant"`. */
export function withRoles(events: unknown[]): unknown[] {
  const seen = new Set<number>();
  return events.map((e) => {
    if (typeof e !== "object" || e === null || !Array.isArray((e as Chunk).choices)) return e;
    const choices = ((e as Chunk).choices as Chunk[]).map((c) => {
      if (seen.has(c.index as number)) return c;
      seen.add(c.index as number);
      return "role" in (c.delta as Chunk) ? c : { ...c, delta: { role: "assistant", ...(c.delta as Chunk) } };
    });
    return { ...(e as Chunk), choices };
  });
}

/** `bytes` cut at the given offsets (any order, duplicates and out-of-range ones ignored). */
export function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].filter((c) => c > 0 && c < bytes.length).sort((
    a,
    b,
  ) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const c of [...at, bytes.length]) {
    out.push(bytes.slice(from, c));
    from = c;
  }
  return out;
}

/** An OpenAI-compatible upstream that answers the next request with the scripted pieces, each its own write. */
export class SplitUpstream {
  private next: Uint8Array[] = [];

  script(pieces: Uint8Array[]): void {
    this.next = pieces;
  }

  readonly fetch = (_req: Request): Response => {
    const pieces = this.next;
    this.next = [];
    let i = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (i >= pieces.length) return controller.close();
        // A turn of the event loop between writes, so they leave as separate reads where TCP allows.
        if (i > 0) await new Promise((r) => setTimeout(r, 0));
        controller.enqueue(pieces[i++]!);
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  };
}

const enc = new TextEncoder();

/** One streamed request through SAM; the body read must finish within `ms` (a stalled stream fails). */
async function streamThroughSam(samBase: string, key: string, rec: Recorded, ms: number): Promise<string> {
  const body: Chunk = { model: "m", stream: true, messages: [{ role: "user", content: "go" }] };
  if (rec.tools.length) {
    body.tools = rec.tools.map((name) => ({
      type: "function",
      function: { name, parameters: { type: "object", properties: { path: { type: "string" } } } },
    }));
  }
  const signal = AbortSignal.timeout(ms);
  const res = await fetch(`${samBase}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
    signal,
  });
  if (res.status !== 200) throw new Error(`SAM answered HTTP ${res.status}: ${await res.text()}`);
  try {
    return await res.text();
  } catch (err) {
    throw new Error(`the stream '${rec.name}' did not finish within ${ms} ms (${(err as Error).message})`);
  }
}

function assertSame(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}\n  got      ${a}\n  expected ${e}`);
}

/**
 * The property: for every recorded stream and random cut points, the events SAM sends equal those it sends
 * for the unsplit stream; without tools, those are the upstream's own events with the role added.
 */
export async function checkSplitProperty(
  opts: { samBase: string; key: string; upstream: SplitUpstream; numRuns?: number; timeoutMs?: number },
): Promise<void> {
  const ms = opts.timeoutMs ?? 3_000;
  const reference: unknown[][] = [];
  for (const rec of RECORDED) {
    opts.upstream.script([enc.encode(rec.sse)]);
    const events = sseData(await streamThroughSam(opts.samBase, opts.key, rec, ms));
    if (rec.tools.length === 0) {
      assertSame(events, withRoles(sseData(rec.sse)), `unsplit '${rec.name}': not the upstream's events with roles`);
    }
    const firstDeltas = new Map<number, Chunk>();
    for (const e of events) {
      for (const c of ((e as Chunk).choices ?? []) as Chunk[]) {
        if (!firstDeltas.has(c.index as number)) firstDeltas.set(c.index as number, c.delta as Chunk);
      }
    }
    for (const [index, delta] of firstDeltas) {
      assertSame(delta.role, "assistant", `'${rec.name}': first delta of choice ${index} has no role`);
    }
    reference.push(events);
  }
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: RECORDED.length - 1 }),
      fc.array(fc.nat(), { minLength: 1, maxLength: 24 }),
      async (k, cuts) => {
        const rec = RECORDED[k]!;
        opts.upstream.script(splitAt(enc.encode(rec.sse), cuts));
        const events = sseData(await streamThroughSam(opts.samBase, opts.key, rec, ms));
        assertSame(events, reference[k], `'${rec.name}' split at ${JSON.stringify(cuts)}`);
      },
    ),
    { numRuns: opts.numRuns ?? 120 },
  );
}
