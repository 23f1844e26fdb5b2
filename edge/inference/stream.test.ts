import { describe, expect, test } from "bun:test";
import { chunk, sseEvents, textStream } from "../testing/cloudflare-fake.ts";
import { proxyStream, StreamNormaliser } from "./stream.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Run SSE text through a normaliser, `size` bytes at a time; returns the output and the stream's result. */
function run(input: string, tools: string[], size: number) {
  const n = new StreamNormaliser(new Set(tools), "seed-1", "m");
  const bytes = enc.encode(input);
  let out = "";
  const add = (b: Uint8Array | null) => {
    if (b !== null) out += dec.decode(b);
  };
  for (let i = 0; i < bytes.length; i += size) add(n.push(bytes.slice(i, i + size)));
  add(n.end());
  return { out, result: n.result(true) };
}

type Delta = {
  content?: string | null;
  tool_calls?: { index: number; id?: string; function: { name?: string; arguments: string } }[];
};
function events(out: string) {
  const datas = out.split(/\n\n/).filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
  expect(datas.at(-1)).toBe("[DONE]");
  return datas.slice(0, -1).map((d) =>
    JSON.parse(d) as { choices: { delta: Delta; finish_reason: string | null }[]; usage?: unknown }
  );
}

describe("stream normaliser", () => {
  test("without tools, bytes pass through unchanged, even one byte at a time, and usage is read", () => {
    const input = textStream(["a", "b"]).join("");
    const { out, result } = run(input, [], 1);
    expect(out).toBe(input);
    expect(result.usage).toEqual({ promptTokens: 9, completionTokens: 2 });
  });

  test("a well-formed stream with tools requested passes through unchanged", () => {
    const input = sseEvents([
      chunk({
        role: "assistant",
        tool_calls: [{ index: 0, id: "call_x", type: "function", function: { name: "f", arguments: "" } }],
      }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: "{}" } }] }),
      chunk({}, "tool_calls"),
    ]).join("");
    expect(run(input, ["f"], 5).out).toBe(input);
  });

  test("text before a Hermes tag streams out; the tag becomes a tool call and the finish says tool_calls", () => {
    const input = sseEvents([
      chunk({ role: "assistant", content: "Sure. " }),
      chunk({ content: '<tool_call>{"name": "f", ' }),
      chunk({ content: '"arguments": {"a": 1}}</tool_call>' }),
      chunk({}, "stop"),
    ]).join("");
    const evs = events(run(input, ["f"], 3).out);
    const text = evs.map((e) => e.choices[0]?.delta.content ?? "").join("");
    expect(text).toBe("Sure. ");
    const calls = evs.flatMap((e) => e.choices[0]?.delta.tool_calls ?? []);
    expect(calls).toEqual([
      {
        index: 0,
        id: expect.stringMatching(/^call_/),
        type: "function",
        function: { name: "f", arguments: '{"a":1}' },
      } as never,
    ]);
    expect(evs.at(-1)!.choices[0]!.finish_reason).toBe("tool_calls");
  });

  test("a held partial tag that turns out to be prose is released in order", () => {
    const input = sseEvents([chunk({ content: "x <to" }), chunk({ content: "p> y" }), chunk({}, "stop")]).join("");
    const evs = events(run(input, ["f"], 4).out);
    expect(evs.map((e) => e.choices[0]?.delta.content ?? "").join("")).toBe("x <top> y");
    expect(evs.at(-1)!.choices[0]!.finish_reason).toBe("stop");
  });

  test("what push returns never shares memory with the bytes it was given (the reader reads into them again)", () => {
    const input = textStream(["a", "b"]).join("");
    for (const tools of [[], ["f"]]) {
      const n = new StreamNormaliser(new Set(tools), "seed-1", "m");
      const bytes = enc.encode(input);
      const out = n.push(bytes)!;
      const sent = dec.decode(out);
      bytes.fill(0);
      expect(dec.decode(out)).toBe(sent);
    }
  });

  test("a stream that ends without a finish or [DONE] still yields the tool call, a finish and [DONE]", () => {
    const input = sseEvents([chunk({ content: '{"name": "f", "arguments": {}}' })], { done: false }).join("");
    const evs = events(run(input, ["f"], 64).out);
    expect(evs.flatMap((e) => e.choices[0]?.delta.tool_calls ?? [])).toHaveLength(1);
    expect(evs.at(-1)!.choices[0]!.finish_reason).toBe("tool_calls");
  });
});

describe("proxyStream", () => {
  test("with tools and an upstream split mid-event, the client still gets every event (a pull that enqueued nothing stalled it)", async () => {
    const input = sseEvents([
      chunk({
        role: "assistant",
        tool_calls: [{ index: 0, id: "call_x", type: "function", function: { name: "f", arguments: "" } }],
      }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: "{}" } }] }),
      chunk({}, "tool_calls"),
    ]).join("");
    const bytes = enc.encode(input);
    let i = 0;
    const upstream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (i >= bytes.length) return c.close();
        c.enqueue(bytes.slice(i, i + 3));
        i += 3;
      },
    });
    let ended: unknown = null;
    const body = proxyStream(upstream, new StreamNormaliser(new Set(["f"]), "seed-1", "m"), (end) => {
      ended = end;
    });
    const text = await Promise.race([
      new Response(body).text(),
      Bun.sleep(5_000).then(() => "timed out: the stream stalled"),
    ]);
    expect(text).toBe(input);
    expect(ended).toMatchObject({ completed: true });
  });
});
