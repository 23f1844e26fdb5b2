/**
 * A Cloudflare fake for tests and benchmarks (this machine cannot reach Cloudflare): one HTTP server on an
 * ephemeral loopback port serving
 *   - the Workers AI REST endpoints `/client/v4/accounts/{account}/ai/v1/{chat/completions,embeddings}`,
 *   - the AI Gateway endpoint       `/v1/{account}/{gateway}/workers-ai/v1/chat/completions`
 *     (checks `Authorization`, `cf-aig-authorization` on an authenticated gateway and `cf-aig-metadata`),
 *   - the gateway management API    `/client/v4/accounts/{account}/ai-gateway/gateways[/{id}]` (GET, POST,
 *     PUT) as Cloudflare's API schema describes it: gateway objects with `created_at`/`modified_at`, create
 *     and update bodies validated (required fields, enums, the id pattern) with the one documented error
 *     (400, code 7001), everything in the `{ success, errors, messages, result }` envelope,
 *   - a plain OpenAI-compatible server under `/openai/v1` (a stand-in for llama.cpp/vLLM/Ollama).
 * Every request is recorded; replies are scripted per test through queues, with a default text answer.
 */

export type FakeReply = {
  status?: number;
  /** A JSON body. */
  json?: unknown;
  /** A body sent exactly as given (as JSON content type). */
  raw?: string;
  /** An SSE body: each piece is written as its own network chunk. */
  sse?: string[];
  /** Wait this long before answering at all (a slow first byte). */
  delayMs?: number;
  /** Wait this long between SSE pieces. */
  pieceDelayMs?: number;
  /** After the pieces, keep the stream open until the client goes away. */
  hang?: boolean;
  /** After the pieces, break the connection (an upstream dying mid-stream). */
  breakAfter?: boolean;
  headers?: Record<string, string>;
};

export type FakeEndpoint = "rest" | "gateway" | "openai" | "management";

export type RecordedRequest = {
  endpoint: FakeEndpoint;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
};

export type FakeGateway = {
  id: string;
  authentication: boolean;
  collect_logs: boolean;
  rate_limiting_limit: number | null;
  rate_limiting_interval: number | null;
  [k: string]: unknown;
};

/** A gateway as Cloudflare returns it, from the settings given (as a test seeds one that already exists). */
export function gatewayObject(
  settings: Partial<FakeGateway> & { id: string },
  now = new Date().toISOString(),
): FakeGateway {
  return {
    cache_invalidate_on_update: false,
    cache_ttl: 0,
    collect_logs: true,
    rate_limiting_interval: 0,
    rate_limiting_limit: 0,
    rate_limiting_technique: "fixed",
    authentication: false,
    created_at: now,
    modified_at: now,
    ...settings,
  };
}

const GATEWAY_ID = /^[a-z0-9_]+(?:-[a-z0-9_]+)*$/;

/** Create (with `id`) or update body problems, as the schema states them; empty when valid. */
function gatewayBodyProblems(body: Record<string, unknown> | null, create: boolean): string[] {
  const b = body ?? {};
  const out: string[] = [];
  if (create && !(typeof b.id === "string" && b.id.length >= 1 && b.id.length <= 64 && GATEWAY_ID.test(b.id))) {
    out.push("id: must match ^[a-z0-9_]+(?:-[a-z0-9_]+)*$ (1-64)");
  }
  for (const k of ["cache_invalidate_on_update", "collect_logs"]) {
    if (typeof b[k] !== "boolean") out.push(`${k}: required boolean`);
  }
  for (const k of ["cache_ttl", "rate_limiting_interval", "rate_limiting_limit"]) {
    if (!(k in b) || !(b[k] === null || (typeof b[k] === "number" && (b[k] as number) >= 0))) {
      out.push(`${k}: required number or null`);
    }
  }
  if (!["fixed", "sliding"].includes(b.rate_limiting_technique as string)) {
    out.push("rate_limiting_technique: one of fixed, sliding");
  }
  if ("authentication" in b && typeof b.authentication !== "boolean") out.push("authentication: boolean");
  return out;
}

export type CloudflareFake = {
  url: string;
  /** For SAM_CF_API_BASE. */
  apiBase: string;
  /** For SAM_CF_GATEWAY_BASE. */
  gatewayBase: string;
  /** For SAM_INFERENCE_URL. */
  openaiBase: string;
  accountId: string;
  apiToken: string;
  /** Scripted replies, taken in order; an empty queue answers with a default completion. */
  replies: Record<FakeEndpoint, FakeReply[]>;
  requests: RecordedRequest[];
  gateways: Map<string, FakeGateway>;
  /** The gateway token an authenticated gateway expects in `cf-aig-authorization`. */
  gatewayToken: string;
  /** Streams whose client went away before the stream ended. */
  cancelledStreams: number;
  /** Requests whose client went away while a reply's `delayMs` ran (before any byte was sent). */
  abandonedWaits: number;
  close(): Promise<void>;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function envelope(result: unknown, status = 200, errors: { code: number; message: string }[] = []): FakeReply {
  return { status, json: { success: errors.length === 0, errors, messages: [], result } };
}

export function chatCompletion(
  message: Record<string, unknown>,
  opts: { finish?: string; usage?: unknown; model?: string; id?: string } = {},
) {
  return {
    id: opts.id ?? "chatcmpl-fake-1",
    object: "chat.completion",
    created: 1_700_000_000,
    model: opts.model ?? "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
    choices: [{
      index: 0,
      message: { role: "assistant", ...message },
      finish_reason: opts.finish ?? "stop",
      logprobs: null,
    }],
    usage: opts.usage === undefined ? { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 } : opts.usage,
  };
}

export function chunk(
  delta: Record<string, unknown>,
  finish: string | null = null,
  extra: Record<string, unknown> = {},
) {
  return {
    id: "chatcmpl-fake-stream",
    object: "chat.completion.chunk",
    created: 1_700_000_000,
    model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
    choices: [{ index: 0, delta, finish_reason: finish }],
    ...extra,
  };
}

/** SSE events for the given chunks, `[DONE]` last unless `done: false`. */
export function sseEvents(chunks: unknown[], opts: { done?: boolean } = {}): string[] {
  const events = chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`);
  if (opts.done !== false) events.push("data: [DONE]\n\n");
  return events;
}

/** A streamed text answer split into the given pieces, with a usage chunk at the end. */
export function textStream(
  pieces: string[],
  usage: unknown = { prompt_tokens: 9, completion_tokens: pieces.length, total_tokens: 9 + pieces.length },
): string[] {
  return sseEvents([
    chunk({ role: "assistant", content: "" }),
    ...pieces.map((p) => chunk({ content: p })),
    chunk({}, "stop"),
    ...(usage ? [{ ...chunk({}, null), choices: [], usage }] : []),
  ]);
}

function cfError(status: number, code: number, message: string): Response {
  return Response.json({ success: false, errors: [{ code, message }], messages: [], result: null }, { status });
}

function validMetadata(raw: string | null): string | null {
  if (raw === null) return null;
  let meta: unknown;
  try {
    meta = JSON.parse(raw);
  } catch {
    return "cf-aig-metadata is not JSON";
  }
  if (typeof meta !== "object" || meta === null || Array.isArray(meta)) return "cf-aig-metadata must be a JSON object";
  const entries = Object.entries(meta);
  if (entries.length > 5) return `cf-aig-metadata has ${entries.length} entries; at most 5 are kept`;
  if (entries.some(([, v]) => !["string", "number", "boolean"].includes(typeof v))) {
    return "cf-aig-metadata values must be strings, numbers or booleans";
  }
  return null;
}

/** Serves a fetch handler on an ephemeral loopback port; the default is `Bun.serve`, a Deno test passes its own. */
export type ServeLoopback = (fetch: (req: Request) => Promise<Response>) => { port: number; stop(): Promise<void> };

type BunServe = { serve(o: object): { port: number; stop(force: boolean): Promise<void> } };

const bunServe: ServeLoopback = (fetch) => {
  // Reached through globalThis so this module also type-checks under Deno, whose tests pass `serve`.
  const { Bun } = globalThis as unknown as { Bun: BunServe };
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", idleTimeout: 30, fetch });
  return { port: server.port, stop: () => server.stop(true) };
};

export function startCloudflareFake(
  opts: { accountId?: string; apiToken?: string; gatewayToken?: string; serve?: ServeLoopback } = {},
): CloudflareFake {
  const accountId = opts.accountId ?? "acc123";
  const apiToken = opts.apiToken ?? "cf-token-fake";
  const fake: CloudflareFake = {
    url: "",
    apiBase: "",
    gatewayBase: "",
    openaiBase: "",
    accountId,
    apiToken,
    replies: { rest: [], gateway: [], openai: [], management: [] },
    requests: [],
    gateways: new Map(),
    gatewayToken: opts.gatewayToken ?? "aig-token-fake",
    cancelledStreams: 0,
    abandonedWaits: 0,
    close: async () => {},
  };

  async function reply(r: FakeReply, signal: AbortSignal): Promise<Response> {
    if (r.delayMs) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, r.delayMs);
        signal.addEventListener("abort", () => {
          clearTimeout(timer);
          fake.abandonedWaits++;
          resolve();
        }, { once: true });
      });
      if (signal.aborted) return new Response(null, { status: 499 });
    }
    if (r.sse) {
      const pieces = [...r.sse];
      const enc = new TextEncoder();
      let finished = false;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const next = pieces.shift();
          if (next !== undefined) {
            if (r.pieceDelayMs) await sleep(r.pieceDelayMs);
            controller.enqueue(enc.encode(next));
            return;
          }
          if (r.breakAfter) {
            finished = true;
            controller.error(new Error("upstream connection reset"));
            return;
          }
          if (r.hang) {
            await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
            return;
          }
          finished = true;
          controller.close();
        },
        cancel() {
          if (!finished) fake.cancelledStreams++;
        },
      });
      signal.addEventListener("abort", () => {
        if (!finished) {
          finished = true;
          fake.cancelledStreams++;
        }
      }, { once: true });
      return new Response(body, {
        status: r.status ?? 200,
        headers: { "content-type": "text/event-stream", ...r.headers },
      });
    }
    if (r.raw !== undefined) {
      return new Response(r.raw, {
        status: r.status ?? 200,
        headers: { "content-type": "application/json", ...r.headers },
      });
    }
    return Response.json(r.json ?? null, { status: r.status ?? 200, headers: r.headers });
  }

  function defaultChat(endpoint: FakeEndpoint, body: Record<string, unknown>): FakeReply {
    if (body.stream === true) return { sse: textStream(["Hello ", "from ", endpoint]) };
    return { json: chatCompletion({ content: `Hello from ${endpoint}` }, { model: String(body.model) }) };
  }

  async function chat(endpoint: FakeEndpoint, req: Request, body: Record<string, unknown>): Promise<Response> {
    if (typeof body.model !== "string" || !Array.isArray(body.messages)) {
      return Response.json({ error: { message: "model and messages are required", type: "invalid_request_error" } }, {
        status: 400,
      });
    }
    const res = await reply(fake.replies[endpoint].shift() ?? defaultChat(endpoint, body), req.signal);
    if (endpoint === "gateway") {
      // What AI Gateway adds to every answer it proxies.
      res.headers.set("cf-aig-log-id", `01J${crypto.randomUUID().replace(/-/g, "").slice(0, 23).toUpperCase()}`);
      res.headers.set("cf-aig-cache-status", "MISS");
    }
    return res;
  }

  /** Deterministic float vectors (Workers AI answers floats), with the usage Workers AI reports. */
  function embed(endpoint: FakeEndpoint, req: Request, body: Record<string, unknown>): Promise<Response> | Response {
    const scripted = fake.replies[endpoint].shift();
    if (scripted) return reply(scripted, req.signal);
    const inputs = typeof body.input === "string" ? [body.input] : Array.isArray(body.input) ? body.input : null;
    if (typeof body.model !== "string" || !inputs || inputs.length === 0) {
      return Response.json({ error: { message: "model and input are required", type: "invalid_request_error" } }, {
        status: 400,
      });
    }
    const dims = /bge-small/.test(body.model) ? 384 : /bge-base/.test(body.model) ? 768 : 1024;
    const data = inputs.map((input, index) => {
      const seed = JSON.stringify(input).length;
      return {
        object: "embedding",
        index,
        embedding: Array.from({ length: dims }, (_, i) => Math.fround(((seed * 31 + i) % 97) / 97 - 0.5)),
      };
    });
    const tokens = inputs.reduce((n: number, input) => n + Math.ceil(JSON.stringify(input).length / 4), 0);
    return Response.json({
      object: "list",
      data,
      model: body.model,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    });
  }

  function management(
    req: Request,
    rest: string[],
    body: Record<string, unknown> | null,
  ): Promise<Response> | Response {
    const scripted = fake.replies.management.shift();
    if (scripted) return reply(scripted, req.signal);
    if (rest.length === 0 && req.method === "GET") {
      return Response.json({ success: true, errors: [], messages: [], result: [...fake.gateways.values()] });
    }
    if (rest.length === 1 && req.method === "GET") {
      const gw = fake.gateways.get(rest[0]!);
      return gw
        ? Response.json({ success: true, errors: [], messages: [], result: gw })
        : cfError(404, 7002, "Not Found");
    }
    if (rest.length === 0 && req.method === "POST") {
      const problems = gatewayBodyProblems(body, true);
      if (problems.length) return cfError(400, 7001, `Input Validation Error: ${problems.join("; ")}`);
      const id = body!.id as string;
      // The schema documents no "already exists" error: a duplicate is one more 400 with code 7001.
      if (fake.gateways.has(id)) return cfError(400, 7001, "Input Validation Error");
      const gw = gatewayObject({ ...(body as object), id } as FakeGateway);
      fake.gateways.set(id, gw);
      return Response.json({ success: true, errors: [], messages: [], result: gw });
    }
    if (rest.length === 1 && req.method === "PUT") {
      const gw = fake.gateways.get(rest[0]!);
      if (!gw) return cfError(404, 7002, "Not Found");
      const problems = gatewayBodyProblems(body, false);
      if (problems.length) return cfError(400, 7001, `Input Validation Error: ${problems.join("; ")}`);
      const updated = {
        ...gw,
        ...(body as object),
        id: gw.id,
        created_at: gw.created_at,
        modified_at: new Date().toISOString(),
      } as FakeGateway;
      fake.gateways.set(gw.id, updated);
      return Response.json({ success: true, errors: [], messages: [], result: updated });
    }
    return cfError(405, 10000, "method not allowed");
  }

  const server = (opts.serve ?? bunServe)(
    async (req) => {
      const url = new URL(req.url);
      const text = req.method === "POST" || req.method === "PUT" ? await req.text() : "";
      let body: Record<string, unknown> | null = null;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        return cfError(400, 10001, "request body is not JSON");
      }
      const headers = Object.fromEntries(req.headers);
      const parts = url.pathname.split("/").filter(Boolean);
      const auth = req.headers.get("authorization");
      const record = (endpoint: FakeEndpoint) =>
        fake.requests.push({ endpoint, method: req.method, path: url.pathname, headers, body });

      // /client/v4/accounts/{account}/...
      if (parts[0] === "client" && parts[1] === "v4" && parts[2] === "accounts") {
        if (parts[3] !== accountId) return cfError(404, 7003, "Could not route to the account");
        if (parts.slice(4, 8).join("/") === "ai/v1/chat/completions" && req.method === "POST") {
          record("rest");
          if (auth !== `Bearer ${apiToken}`) return cfError(401, 10000, "Authentication error");
          return chat("rest", req, body ?? {});
        }
        if (parts.slice(4, 7).join("/") === "ai/v1/embeddings" && parts.length === 7 && req.method === "POST") {
          record("rest");
          if (auth !== `Bearer ${apiToken}`) return cfError(401, 10000, "Authentication error");
          return embed("rest", req, body ?? {});
        }
        if (parts[4] === "ai-gateway" && parts[5] === "gateways") {
          record("management");
          if (auth !== `Bearer ${apiToken}`) return cfError(401, 10000, "Authentication error");
          return management(req, parts.slice(6), body);
        }
      }
      // /v1/{account}/{gateway}/workers-ai/v1/chat/completions
      const gatewayOp = parts[0] === "v1" && req.method === "POST"
        ? {
          "workers-ai/v1/chat/completions": "chat",
          "workers-ai/v1/embeddings": "embeddings",
        }[parts.slice(3).join("/")]
        : undefined;
      if (gatewayOp) {
        record("gateway");
        if (parts[1] !== accountId) {
          return Response.json({
            success: false,
            result: [],
            messages: [],
            error: [{ code: 2001, message: "Please configure AI Gateway in the Cloudflare dashboard" }],
          }, { status: 400 });
        }
        const gw = fake.gateways.get(parts[2]!);
        if (!gw) {
          return Response.json({
            success: false,
            result: [],
            messages: [],
            error: [{ code: 2001, message: "Please configure AI Gateway in the Cloudflare dashboard" }],
          }, { status: 400 });
        }
        if (gw.authentication && req.headers.get("cf-aig-authorization") !== `Bearer ${fake.gatewayToken}`) {
          return Response.json({
            success: false,
            result: [],
            messages: [],
            error: [{ code: 2009, message: "Unauthorized" }],
          }, { status: 401 });
        }
        if (auth !== `Bearer ${apiToken}`) return cfError(401, 10000, "Authentication error");
        const bad = validMetadata(req.headers.get("cf-aig-metadata"));
        if (bad) return cfError(400, 2010, bad);
        return gatewayOp === "embeddings" ? embed("gateway", req, body ?? {}) : chat("gateway", req, body ?? {});
      }
      // /openai/v1/... — a generic OpenAI-compatible server
      if (parts[0] === "openai" && parts[1] === "v1") {
        record("openai");
        if (auth !== `Bearer ${apiToken}`) {
          return Response.json({
            error: { message: "Incorrect API key", type: "invalid_request_error", code: "invalid_api_key" },
          }, { status: 401 });
        }
        if (parts[2] === "models") {
          return Response.json({
            object: "list",
            data: [{ id: "qwen2.5-coder:7b", object: "model", created: 0, owned_by: "library" }],
          });
        }
        if (parts[2] === "chat" && parts[3] === "completions") return chat("openai", req, body ?? {});
        if (parts[2] === "embeddings") return embed("openai", req, body ?? {});
      }
      return cfError(404, 7000, `No route for ${req.method} ${url.pathname}`);
    },
  );
  fake.url = `http://127.0.0.1:${server.port}`;
  fake.apiBase = `${fake.url}/client/v4`;
  fake.gatewayBase = `${fake.url}/v1`;
  fake.openaiBase = `${fake.url}/openai/v1`;
  fake.close = () => server.stop();
  return fake;
}
