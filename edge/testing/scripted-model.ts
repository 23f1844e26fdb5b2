/**
 * A scripted OpenAI-compatible model for client tests, stateless so any number of clients can share it: the
 * model name picks how it answers a tool-offering request — `text`, `native` (tool_calls), `hermes`
 * (`<tool_call>` text) or `json` (a bare `{"name", "arguments"}` object) — calling the request's first tool
 * with `{"city": "Paris"}`. Once the conversation holds a tool result it answers with text quoting it.
 * Streams leave out `role` and split events across writes, as Workers AI and TCP do.
 *
 * For coding-agent CLIs, the model `writer` (native tool call) or `writer-hermes` answers a prompt holding
 * `write "<text>" to <absolute path>` by calling the client's own file-writing tool (`write_file`, or the
 * first tool whose name says write) with that path and text.
 */

export const SHAPES = ["text", "native", "hermes", "json"] as const;
export type Shape = (typeof SHAPES)[number];

export const TEXT_ANSWER = "Hello from the scripted model.";
export const CITY_ARGS = { city: "Paris" };
/** The final answer after the tool round trip: it quotes the tool's result. */
export const finalAnswer = (toolResult: string) => `The tool said: ${toolResult}`;

type Message = { role: string; content?: unknown; tool_calls?: unknown[] };
type Body = {
  model?: string;
  stream?: boolean;
  messages?: Message[];
  tools?: { function: { name: string } }[];
  stream_options?: { include_usage?: boolean };
};

const base = { id: "chatcmpl-scripted", created: 1_700_000_000 };
const usage = { prompt_tokens: 20, completion_tokens: 10, total_tokens: 30 };

function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p) => (p as { text?: string }).text ?? "").join("");
  return "";
}

const WRITE_ORDER = /write "([^"]*)" to (\/\S+)/;

/** A coding agent's write tool called with the path and text the user asked for, or null. */
function writeOrder(body: Body): { tool: string; args: Record<string, string> } | null {
  const order = (body.messages ?? []).filter((m) => m.role === "user").map((m) =>
    WRITE_ORDER.exec(contentText(m.content))
  ).find(Boolean);
  const names = (body.tools ?? []).map((t) => t.function.name);
  const tool = names.find((n) => n === "write_file") ?? names.find((n) => /write/i.test(n));
  if (!order || !tool) return null;
  return { tool, args: { [tool === "write_file" ? "file_path" : "path"]: order[2]!, content: order[1]! } };
}

/** What the model answers: text, or one call of `tool` in the given shape. */
function plan(
  body: Body,
): { text: string } | { tool: string; shape: Exclude<Shape, "text">; args?: Record<string, string> } {
  const messages = body.messages ?? [];
  const toolResult = [...messages].reverse().find((m) => m.role === "tool");
  if (toolResult) return { text: finalAnswer(contentText(toolResult.content)) };
  if (body.model?.startsWith("writer")) {
    const order = writeOrder(body);
    return order ? { ...order, shape: body.model === "writer-hermes" ? "hermes" : "native" } : { text: TEXT_ANSWER };
  }
  const shape = (SHAPES as readonly string[]).includes(body.model ?? "") ? body.model as Shape : "text";
  const tool = body.tools?.[0]?.function.name;
  if (shape === "text" || !tool) return { text: TEXT_ANSWER };
  return { tool, shape };
}

function completion(body: Body): Response {
  const p = plan(body);
  let message: Record<string, unknown>;
  let finish = "stop";
  if ("text" in p) message = { role: "assistant", content: p.text };
  else if (p.shape === "native") {
    message = {
      role: "assistant",
      content: null,
      tool_calls: [{
        id: "call_scripted_1",
        type: "function",
        function: { name: p.tool, arguments: JSON.stringify(p.args ?? CITY_ARGS) },
      }],
    };
    finish = "tool_calls";
  } else {
    const call = JSON.stringify({ name: p.tool, arguments: p.args ?? CITY_ARGS });
    message = { role: "assistant", content: p.shape === "hermes" ? `<tool_call>${call}</tool_call>` : call };
  }
  return Response.json({
    ...base,
    object: "chat.completion",
    model: body.model,
    choices: [{ index: 0, message, finish_reason: finish, logprobs: null }],
    usage,
  });
}

function pieces(text: string, n: number): string[] {
  const size = Math.ceil(text.length / n);
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

function stream(body: Body): Response {
  const p = plan(body);
  const ev = (delta: Record<string, unknown>, finish: string | null = null) =>
    `data: ${
      JSON.stringify({
        ...base,
        object: "chat.completion.chunk",
        model: body.model,
        choices: [{ index: 0, delta, finish_reason: finish }],
      })
    }\n\n`;
  const events: string[] = [];
  if ("text" in p) {
    for (const piece of pieces(p.text, 3)) events.push(ev({ content: piece }));
    events.push(ev({}, "stop"));
  } else if (p.shape === "native") {
    events.push(
      ev({
        tool_calls: [{ index: 0, id: "call_scripted_1", type: "function", function: { name: p.tool, arguments: "" } }],
      }),
    );
    for (const piece of pieces(JSON.stringify(p.args ?? CITY_ARGS), 3)) {
      events.push(ev({ tool_calls: [{ index: 0, function: { arguments: piece } }] }));
    }
    events.push(ev({}, "tool_calls"));
  } else {
    const call = JSON.stringify({ name: p.tool, arguments: p.args ?? CITY_ARGS });
    for (const piece of pieces(p.shape === "hermes" ? `<tool_call>${call}</tool_call>` : call, 4)) {
      events.push(ev({ content: piece }));
    }
    events.push(ev({}, "stop"));
  }
  if (body.stream_options?.include_usage) {
    events.push(
      `data: ${
        JSON.stringify({ ...base, object: "chat.completion.chunk", model: body.model, choices: [], usage })
      }\n\n`,
    );
  }
  events.push("data: [DONE]\n\n");
  // Cut every event in two, so SAM sees reads that end mid-event.
  const enc = new TextEncoder();
  const writes = events.flatMap((e) => [e.slice(0, Math.ceil(e.length / 2)), e.slice(Math.ceil(e.length / 2))]).map((
    s,
  ) => enc.encode(s));
  let i = 0;
  return new Response(
    new ReadableStream<Uint8Array>({
      async pull(c) {
        if (i >= writes.length) return c.close();
        if (i > 0) await new Promise((r) => setTimeout(r, 0));
        c.enqueue(writes[i++]!);
      },
    }),
    { headers: { "content-type": "text/event-stream" } },
  );
}

/** The model as a fetch handler for `Bun.serve` or `Deno.serve`; OpenAI-compatible under `/v1`. */
export async function scriptedModel(req: Request): Promise<Response> {
  const path = new URL(req.url).pathname;
  if (path.endsWith("/models")) {
    return Response.json({
      object: "list",
      data: SHAPES.map((id) => ({ id, object: "model", created: 0, owned_by: "scripted" })),
    });
  }
  if (!path.endsWith("/chat/completions") || req.method !== "POST") {
    return Response.json({ error: { message: `no route ${path}` } }, { status: 404 });
  }
  const body = await req.json() as Body;
  return body.stream ? stream(body) : completion(body);
}
