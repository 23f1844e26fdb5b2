/**
 * Test support: a chat-completions upstream on loopback (node:http, so Bun and Deno tests share it) that
 * answers from a script — text, native tool calls, a Hermes `<tool_call>` written as text, or an error —
 * as JSON or, when asked to stream, as SSE shaped like Workers AI's: no `role` in the first delta,
 * arguments split over several chunks, usage in a final chunk without choices. Remembers every request.
 * The edge's inference tests put it upstream of the edge; the agent's tests call it as the model.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export type ChatStep =
  | { text: string }
  | { calls: { name: string; args: unknown }[] }
  | { hermes: { name: string; args: unknown } }
  | { status: number; message: string }
  /** Streams the text, then drops the connection without finishing the response. */
  | { broken: string };

export type ChatBody = {
  model: string;
  stream?: boolean;
  messages: { role: string; content: unknown; tool_calls?: unknown[]; tool_call_id?: string }[];
  tools?: { function: { name: string } }[];
  [k: string]: unknown;
};

export type ScriptedChat = {
  /** The base URL, ending in /v1. */
  url: string;
  requests: ChatBody[];
  /** Each request's Authorization header, in the order of `requests`. */
  authorizations: (string | null)[];
  /** Steps answered in order, or a function choosing one from the request. */
  script: ChatStep[] | ((body: ChatBody) => ChatStep);
  close(): Promise<void>;
};

const USAGE = { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 };

function head(id: string, model: string) {
  return { id, object: "chat.completion.chunk", created: 1_700_000_000, model };
}

type Answer = Exclude<ChatStep, { status: number } | { broken: string }>;

function sse(id: string, model: string, step: Answer): string {
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
    `data: ${JSON.stringify({ ...head(id, model), choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  let out = "";
  if ("text" in step) {
    const mid = Math.ceil(step.text.length / 2);
    out += chunk({ content: step.text.slice(0, mid) }) + chunk({ content: step.text.slice(mid) }) + chunk({}, "stop");
  } else if ("hermes" in step) {
    const text = `<tool_call>${JSON.stringify({ name: step.hermes.name, arguments: step.hermes.args })}</tool_call>`;
    out += chunk({ content: text.slice(0, 15) }) + chunk({ content: text.slice(15) }) + chunk({}, "stop");
  } else {
    step.calls.forEach((c, i) => {
      const args = JSON.stringify(c.args);
      const mid = Math.ceil(args.length / 2);
      out += chunk({
        tool_calls: [{
          index: i,
          id: `call_s${i}`,
          type: "function",
          function: { name: c.name, arguments: args.slice(0, mid) },
        }],
      });
      out += chunk({ tool_calls: [{ index: i, function: { arguments: args.slice(mid) } }] });
    });
    out += chunk({}, "tool_calls");
  }
  return out + `data: ${JSON.stringify({ ...head(id, model), choices: [], usage: USAGE })}\n\ndata: [DONE]\n\n`;
}

function json(id: string, model: string, step: Answer) {
  let message: Record<string, unknown>;
  let finish = "stop";
  if ("text" in step) message = { role: "assistant", content: step.text };
  else if ("hermes" in step) {
    message = {
      role: "assistant",
      content: `<tool_call>${JSON.stringify({ name: step.hermes.name, arguments: step.hermes.args })}</tool_call>`,
    };
  } else {
    finish = "tool_calls";
    message = {
      role: "assistant",
      content: null,
      tool_calls: step.calls.map((c, i) => ({
        id: `call_j${i}`,
        type: "function",
        function: { name: c.name, arguments: JSON.stringify(c.args) },
      })),
    };
  }
  return {
    id,
    object: "chat.completion",
    created: 1_700_000_000,
    model,
    choices: [{ index: 0, message, finish_reason: finish }],
    usage: USAGE,
  };
}

export async function startScriptedChat(script: ScriptedChat["script"] = []): Promise<ScriptedChat> {
  let n = 0;
  const chat: ScriptedChat = { url: "", requests: [], authorizations: [], script, close: async () => {} };
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (b: Buffer) => parts.push(b));
    req.on("end", () => {
      if (req.url !== "/v1/chat/completions") {
        res.writeHead(404).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(parts).toString("utf8")) as ChatBody;
      chat.requests.push(body);
      chat.authorizations.push(req.headers.authorization ?? null);
      const s = chat.script;
      const step = typeof s === "function" ? s(body) : s.shift() ?? { text: "(script exhausted)" };
      if ("status" in step) {
        res.writeHead(step.status, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: step.message, type: "upstream_error", code: null } }));
        return;
      }
      const id = `chatcmpl-s${++n}`;
      if ("broken" in step) {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write(
          `data: ${
            JSON.stringify({
              ...head(id, body.model),
              choices: [{ index: 0, delta: { content: step.broken }, finish_reason: null }],
            })
          }\n\n`,
        );
        setTimeout(() => res.destroy(), 200);
        return;
      }
      if (body.stream) {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.end(sse(id, body.model, step));
      } else {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(json(id, body.model, step)));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  chat.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  chat.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    });
  return chat;
}
