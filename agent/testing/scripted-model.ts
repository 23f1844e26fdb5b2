/**
 * Test support: an in-test OpenAI-compatible `/v1/chat/completions` that answers from a script — tool calls,
 * a final message, or an error in OpenAI's error shape — and remembers what it was asked.
 */
export type ScriptStep =
  | { toolCalls: { name: string; args: unknown }[]; content?: string }
  | { content: string }
  | { status: number; message: string };

export type ScriptedModel = {
  url: string;
  script: ScriptStep[];
  requests: {
    authorization: string | null;
    model: string;
    messages: { role: string; content: unknown }[];
    tools: string[];
  }[];
  stop(): Promise<void>;
};

export function startScriptedModel(): ScriptedModel {
  const m = { script: [] as ScriptStep[], requests: [] as ScriptedModel["requests"] } as ScriptedModel;
  let callId = 0;
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      if (new URL(req.url).pathname !== "/v1/chat/completions") return new Response("not found", { status: 404 });
      const body = (await req.json()) as {
        model: string;
        messages: { role: string; content: unknown }[];
        tools?: { function: { name: string } }[];
      };
      m.requests.push({
        authorization: req.headers.get("authorization"),
        model: body.model,
        messages: body.messages,
        tools: (body.tools ?? []).map((t) => t.function.name),
      });
      const step = m.script.shift() ?? { content: "(script exhausted)" };
      if ("status" in step) {
        return Response.json({ error: { message: step.message, type: "unavailable_error", code: null } }, {
          status: step.status,
        });
      }
      const toolCalls = "toolCalls" in step
        ? step.toolCalls.map((c) => ({
          id: `call_${++callId}`,
          type: "function",
          function: { name: c.name, arguments: JSON.stringify(c.args) },
        }))
        : undefined;
      return Response.json({
        id: `chatcmpl-${callId}`,
        object: "chat.completion",
        created: Math.floor(Date.now() / 1000),
        model: body.model,
        choices: [{
          index: 0,
          finish_reason: toolCalls ? "tool_calls" : "stop",
          message: {
            role: "assistant",
            content: step.content ?? null,
            ...(toolCalls ? { tool_calls: toolCalls } : {}),
          },
        }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      });
    },
  });
  m.url = `http://127.0.0.1:${server.port}/v1`;
  m.stop = async () => {
    await server.stop(true);
  };
  return m;
}
