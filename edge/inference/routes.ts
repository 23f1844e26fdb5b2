/**
 * The inference surface as a Hono app the edge mounts at its root: `POST /v1/chat/completions`, `POST /v1/embeddings`,
 * `POST /v1/responses` (bridged onto chat completions in `responses/`), `GET /v1/models` (API keys and task
 * inference tokens) and `GET /api/usage` (the admin sees every key,
 * a key sees its own). Requests are checked here, forwarded to the upstream chosen in `upstream.ts`, and
 * answered in OpenAI's shape; usage is tallied in memory and flushed off the request path.
 */
import { type Context, Hono } from "hono";
import * as v from "valibot";
import { withinBodyDeadline } from "../../shared/body-deadline.ts";
import { HttpError } from "../../shared/errors.ts";
import { parseOrThrow } from "../../shared/validate.ts";
import type { Authenticate, Caller } from "../auth/caller.ts";
import type { EdgeConfig } from "../config.ts";
import type { Client } from "../db/client.ts";
import { renderError, renderNotFound } from "../http-errors.ts";
import type { InferenceConfig } from "./config.ts";
import { Deadlines } from "./timer-queue.ts";
import { EmbeddingRequest, finishEmbeddings, upstreamEmbeddingBody } from "./embeddings.ts";
import { modelObject, WORKERS_AI_EMBEDDING_MODELS, WORKERS_AI_MODELS } from "./models.ts";
import { normaliseCompletion } from "./normalise.ts";
import { RateLimiter, rateLimitHeaders } from "./rate-limit.ts";
import { mountResponses } from "./responses/routes.ts";
import { ResponseStore } from "./responses/store.ts";
import { ChatRequest } from "./schema.ts";
import { proxyStream, StreamNormaliser } from "./stream.ts";
import {
  chatUpstreams,
  configuredMode,
  type InferenceCaller,
  notConfiguredMessage,
  type Operation,
  type Upstream,
  type UpstreamMode,
} from "./upstream.ts";
import { estimateTokens, UsageRecorder } from "./usage.ts";

export type InferenceDeps = {
  config: EdgeConfig;
  inference: InferenceConfig;
  authenticate: Authenticate;
  db: Client;
  fetch?: typeof fetch;
  log?: (line: string) => void;
};

export type Inference = {
  app: Hono;
  usage: UsageRecorder;
  /** The mode `bootstrapGateway` settled on; until called, the configured mode is used. */
  setUpstreamMode(mode: UpstreamMode): void;
  upstreamMode(): UpstreamMode;
  /** Flush recorded usage and stop the flush timer. */
  close(): Promise<void>;
};

/** Response header naming the path that served a completion: gateway, rest or openai-compatible. */
export const UPSTREAM_HEADER = "x-sam-upstream";
/** Set when the gateway failed before answering and REST served the request instead: why. */
export const FALLBACK_HEADER = "x-sam-upstream-fallback";

function bearer(c: Context): string | null {
  const h = c.req.header("authorization");
  if (!h) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1]! : "";
}

async function identify(c: Context, authenticate: Authenticate): Promise<Caller> {
  const token = bearer(c);
  const challenge = { headers: { "WWW-Authenticate": "Bearer" } };
  if (token === null) {
    throw new HttpError(401, "missing API key: send 'Authorization: Bearer <your sam_… key>'", {
      code: "missing_api_key",
      ...challenge,
    });
  }
  const caller = token === "" ? null : await authenticate(token);
  if (!caller) {
    throw new HttpError(401, "invalid API key: it is unknown, revoked or expired", {
      code: "invalid_api_key",
      ...challenge,
    });
  }
  return caller;
}

async function inferenceCaller(c: Context, authenticate: Authenticate): Promise<InferenceCaller> {
  const caller = await identify(c, authenticate);
  if (caller.kind === "key" || caller.kind === "task") return caller;
  const what = caller.kind === "admin" ? "the admin token" : "a node token";
  throw new HttpError(403, `${what} cannot call /v1: create an API key with POST /api/keys and use it instead`, {
    code: "not_an_api_key",
  });
}

/** Stateless (no `stream` option), so one decoder serves every request: constructing one costs more than decoding a small body. */
const utf8 = new TextDecoder();

/**
 * The request body as text, refusing more than `max` bytes without reading past the limit. With a declared
 * Content-Length (within the limit) the HTTP layer delivers at most that many bytes, so the body is read in
 * one native call; only a body of unknown length (chunked) is read piece by piece through a stream reader,
 * which costs a JS ReadableStream per request.
 */
async function readBody(req: Request, max: number): Promise<string> {
  const tooBig = () =>
    new HttpError(413, `request body exceeds ${max} bytes (SAM_INFERENCE_MAX_BODY_BYTES)`, {
      code: "request_too_large",
    });
  const length = req.headers.get("content-length");
  const declared = Number(length ?? "0");
  if (declared > max) throw tooBig();
  // Not `req.body` first: under Bun merely touching it builds the ReadableStream this path avoids.
  if (length !== null && Number.isSafeInteger(declared)) {
    const bytes = await req.arrayBuffer();
    // A Request built in-process is not held to its header; refuse it all the same.
    if (bytes.byteLength > max) throw tooBig();
    return utf8.decode(bytes);
  }
  if (!req.body) return "";
  const reader = req.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => {});
      throw tooBig();
    }
    parts.push(value);
  }
  if (parts.length === 1) return utf8.decode(parts[0]);
  const all = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.byteLength;
  }
  return utf8.decode(all);
}

/** A short, human message out of an upstream error body (OpenAI's shape or Cloudflare's envelope). */
function upstreamMessage(text: string): string {
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    const err = body.error as Record<string, unknown> | string | { message?: unknown }[] | undefined;
    if (typeof err === "string") return err.slice(0, 300);
    // AI Gateway's own errors: `error: [{ code, message }]`.
    if (Array.isArray(err)) {
      const messages = err.map((e) => e?.message).filter((m): m is string => typeof m === "string");
      if (messages.length) return messages.join("; ").slice(0, 300);
    } else if (err && typeof err.message === "string") return err.message.slice(0, 300);
    const errors = body.errors as { message?: unknown }[] | undefined;
    if (Array.isArray(errors) && typeof errors[0]?.message === "string") return errors[0].message.slice(0, 300);
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.replace(/\s+/g, " ").trim().slice(0, 200) || "no details";
}

async function upstreamError(res: Response, path: string): Promise<HttpError> {
  const text = await res.text().catch(() => "");
  const detail = upstreamMessage(text);
  const s = res.status;
  if (s === 401 || s === 403) {
    return new HttpError(
      502,
      `the ${path} upstream refused SAM's credentials (HTTP ${s}); the operator must check CF_API_TOKEN, CF_AIG_TOKEN or SAM_INFERENCE_KEY`,
      { code: "upstream_auth_failed" },
    );
  }
  if (s === 429) {
    const retry = res.headers.get("retry-after");
    return new HttpError(429, `the ${path} upstream is rate limiting: ${detail}`, {
      code: "upstream_rate_limited",
      headers: retry ? { "retry-after": retry } : {},
    });
  }
  if (s >= 400 && s < 500) {
    return new HttpError(s === 404 ? 404 : 400, `the model service rejected the request: ${detail}`, {
      code: "upstream_rejected",
      type: "invalid_request_error",
    });
  }
  return new HttpError(502, `the ${path} upstream failed (HTTP ${s}): ${detail}`, { code: "upstream_failed" });
}

/**
 * An answer with SAM's headers. The content type goes in the constructor and the rest are appended: under
 * Deno a Response built with a lone content type takes a fast path, and appending four headers then costs
 * ≈ 0.7 µs where a five-entry init object costs ≈ 3 µs (Bun: the same either way).
 */
function respond(body: BodyInit, contentType: string, ...headerSets: Record<string, string>[]): Response {
  const res = new Response(body, { status: 200, headers: { "content-type": contentType } });
  for (const set of headerSets) {
    for (const name in set) res.headers.append(name, set[name]!);
  }
  return res;
}

/**
 * AI Gateway's `cf-aig-*` response headers (log id, cache status, …), copied for the client: the log id is how
 * a user finds the request in the gateway's logs.
 */
function gatewayHeaders(from: Headers, into: Record<string, string>): void {
  from.forEach((value, name) => {
    if (name.startsWith("cf-aig-")) into[name] = value;
  });
}

/** How long an upstream call runs before the client's disconnect is watched for (see `send`). */
export const CLIENT_WATCH_AFTER_MS = 20;

const NO_TOOLS: ReadonlySet<string> = new Set();
const STREAM_HEADERS = { "cache-control": "no-cache", connection: "keep-alive" };

/** An upstream call that answered; `release()` once its body is read in full (see `send`). */
type Call = { res: Response; release: () => void };
type Attempt = Call & { upstream: Upstream; fallback: string | null };
/** A request past auth, rate limit and JSON parsing. */
export type Admitted = { caller: InferenceCaller; limitHeaders: Record<string, string>; text: string; json: unknown };
/** An upstream answer with a 2xx status; `release()` once its body is read (see `send`). */
export type Completed = Call & { samHeaders: Record<string, string> };

export function createInferenceRoutes(deps: InferenceDeps): Inference {
  const { config, inference, authenticate } = deps;
  const doFetch = deps.fetch ?? fetch;
  const log = deps.log ?? ((line: string) => console.error(line));
  const limiter = new RateLimiter();
  const deadlines = new Deadlines(inference.firstByteTimeoutMs);
  const clientWatch = new Deadlines(CLIENT_WATCH_AFTER_MS);
  const idle = {
    deadlines: new Deadlines(config.timeouts.inferenceIdle),
    message: `the upstream model server sent nothing for ${
      config.timeouts.inferenceIdle / 1000
    }s (SAM_INFERENCE_IDLE_TIMEOUT); retry the request`,
  };
  const usage = new UsageRecorder(deps.db, inference.usageFlushMs, log);
  let mode = configuredMode(config);
  const app = new Hono();
  app.onError(renderError);
  app.notFound(renderNotFound);

  const allowedModels = (): readonly string[] | null =>
    inference.models ?? (mode === "openai-compatible" ? null : WORKERS_AI_MODELS.map((m) => m.id));
  const allowedEmbeddingModels = (): readonly string[] | null =>
    inference.models ?? (mode === "openai-compatible" ? null : WORKERS_AI_EMBEDDING_MODELS.map((m) => m.id));

  /**
   * One upstream call with a deadline for its first byte; the client's disconnect aborts it too, also later
   * while its body is read, until `release()` unhooks it. One controller fed by both rather than
   * `AbortSignal.any`, which costs several microseconds per request (measured: 5 µs under Deno, 2 µs under
   * Bun).
   *
   * The client's signal is only looked at once the call has run for `CLIENT_WATCH_AFTER_MS`: a call that is
   * over by then never touches it. Under `Deno.serve` the first touch of `request.signal` costs a native
   * cancellation watch per request and, by default (legacy abort), an abort with a fresh `DOMException` when
   * the response has been sent — ≈ 10–15 µs of CPU per request at concurrency 32 (measured with
   * scripts/bench/inference-bisect.ts). A client that went away earlier is seen when the watch starts (the
   * signal is then aborted, or aborts at once), so the upstream call runs at most that much longer than the
   * client; while it waits for a model, that is the common case and still cut short.
   */
  async function send(u: Upstream, body: string, client: Request): Promise<Call> {
    const upstreamAbort = new AbortController();
    let timedOut = false;
    const cancelDeadline = deadlines.add(() => {
      timedOut = true;
      upstreamAbort.abort(new DOMException("first byte timeout", "TimeoutError"));
    });
    let watched: AbortSignal | null = null;
    const onClientAbort = () => upstreamAbort.abort(watched!.reason);
    const cancelWatch = clientWatch.add(() => {
      watched = client.signal;
      if (watched.aborted) onClientAbort();
      else watched.addEventListener("abort", onClientAbort, { once: true });
    });
    const release = () => {
      cancelWatch();
      watched?.removeEventListener("abort", onClientAbort);
    };
    try {
      return {
        res: await doFetch(u.url, { method: "POST", headers: u.headers, body, signal: upstreamAbort.signal }),
        release,
      };
    } catch (err) {
      release();
      if (client.signal.aborted) throw new HttpError(499, "the client closed the request", { code: "client_closed" });
      if (timedOut) {
        throw new HttpError(
          504,
          `the ${u.path} upstream did not answer within ${inference.firstByteTimeoutMs / 1000}s`,
          { code: "upstream_timeout" },
        );
      }
      throw new HttpError(502, `cannot reach the ${u.path} upstream: ${(err as Error).message.slice(0, 200)}`, {
        code: "upstream_unreachable",
      });
    } finally {
      cancelDeadline();
    }
  }

  /** Try the upstreams in order: a gateway 5xx, connect error or timeout retries once on the next. */
  async function forward(upstreams: Upstream[], body: string, client: Request): Promise<Attempt> {
    let fallback: string | null = null;
    for (let i = 0;; i++) {
      const u = upstreams[i]!;
      const last = i === upstreams.length - 1;
      let call: Call;
      try {
        call = await send(u, body, client);
      } catch (err) {
        if (last || !(err instanceof HttpError) || err.status === 499) throw err;
        fallback = `${u.path}: ${err.code}`;
        log(`sam inference: ${err.message}; retrying on ${upstreams[i + 1]!.path}`);
        continue;
      }
      const { res } = call;
      if (res.status >= 500 && !last) {
        await res.body?.cancel().catch(() => {});
        call.release();
        fallback = `${u.path}: HTTP ${res.status}`;
        log(`sam inference: the ${u.path} upstream answered HTTP ${res.status}; retrying on ${upstreams[i + 1]!.path}`);
        continue;
      }
      if ((res.status === 401 || res.status === 403) && u.path === "gateway" && !last) {
        // An authenticated gateway SAM holds no (or a wrong) CF_AIG_TOKEN for: REST still serves the request.
        const detail = upstreamMessage(await res.text().catch(() => ""));
        call.release();
        fallback = `gateway: HTTP ${res.status} ${detail}`.slice(0, 200);
        log(
          `sam inference: the gateway refused SAM (HTTP ${res.status}: ${detail}); check CF_AIG_TOKEN against the gateway's authentication setting; retrying on ${
            upstreams[i + 1]!.path
          }`,
        );
        continue;
      }
      return { ...call, upstream: u, fallback };
    }
  }

  /** The caller, within its rate limit; the limit headers go on every answer. */
  async function admit(c: Context): Promise<{ caller: InferenceCaller; limitHeaders: Record<string, string> }> {
    const caller = await inferenceCaller(c, authenticate);
    const decision = limiter.take(caller.keyId, caller.rateLimitPerMinute ?? inference.rateLimitPerMinute);
    const limitHeaders = rateLimitHeaders(decision);
    if (!decision.allowed) {
      throw new HttpError(
        429,
        `rate limit reached: ${decision.limit} requests per minute for this key; retry after ${decision.retryAfterSeconds}s`,
        { code: "rate_limit_exceeded", headers: limitHeaders },
      );
    }
    return { caller, limitHeaders };
  }

  /** The request body as text and JSON, within the size limit. */
  async function jsonBody(c: Context, what: string): Promise<{ text: string; json: unknown }> {
    const text = await withinBodyDeadline(c.req.raw, readBody(c.req.raw, inference.maxBodyBytes));
    if (text.trim() === "") {
      throw new HttpError(400, `request body is empty; send a JSON ${what}`, { code: "invalid_json" });
    }
    try {
      return { text, json: JSON.parse(text) };
    } catch {
      throw new HttpError(400, "request body is not valid JSON", { code: "invalid_json" });
    }
  }

  /** What every `/v1` POST of the Responses bridge does before looking at its fields: caller, limit, body. */
  async function admitted(c: Context): Promise<Admitted> {
    const { caller, limitHeaders } = await admit(c);
    const { text, json } = await jsonBody(c, "request");
    return { caller, limitHeaders, text, json };
  }

  /**
   * A chat-completions body sent to the model's upstream (with the gateway's fallback); an upstream that
   * refused becomes the `HttpError` to answer with. `samHeaders` name the path that served it.
   */
  async function complete(caller: InferenceCaller, model: string, body: string, client: Request): Promise<Completed> {
    const attempt = await forward(upstreamsFor(caller, model, allowedModels(), "chat/completions"), body, client);
    const samHeaders = samHeadersOf(attempt);
    if (!attempt.res.ok) throw await failure(attempt, samHeaders);
    return { res: attempt.res, release: attempt.release, samHeaders };
  }

  /** The upstreams for `model` and `op`, refusing a model not enabled here or a proxy with no upstream. */
  function upstreamsFor(
    caller: InferenceCaller,
    model: string,
    allowed: readonly string[] | null,
    op: Operation,
  ): Upstream[] {
    if (allowed && !allowed.includes(model)) {
      throw new HttpError(
        404,
        `the model '${model}' does not exist or is not enabled here; GET /v1/models lists the models you can use`,
        { code: "model_not_found", type: "invalid_request_error" },
      );
    }
    const upstreams = chatUpstreams(config, mode, caller, model, op);
    if (upstreams.length === 0) {
      throw new HttpError(503, notConfiguredMessage(config), {
        code: "inference_not_configured",
        headers: { "x-should-retry": "false" },
      });
    }
    return upstreams;
  }

  /** SAM's headers for an answer from `attempt`: which upstream, why not the first, the gateway's own. */
  function samHeadersOf(attempt: Attempt): Record<string, string> {
    const samHeaders: Record<string, string> = { [UPSTREAM_HEADER]: attempt.upstream.path };
    if (attempt.fallback) samHeaders[FALLBACK_HEADER] = attempt.fallback;
    if (attempt.upstream.path === "gateway") gatewayHeaders(attempt.res.headers, samHeaders);
    return samHeaders;
  }

  /** An upstream's error answer as the client's error, carrying SAM's headers. */
  async function failure(attempt: Attempt, samHeaders: Record<string, string>): Promise<HttpError> {
    const err = await upstreamError(attempt.res, attempt.upstream.path);
    attempt.release();
    Object.assign(err.headers, samHeaders);
    return err;
  }

  app.post("/v1/chat/completions", async (c) => {
    const { caller, limitHeaders } = await admit(c);
    const { text, json } = await jsonBody(c, "chat completion request");
    const request = parseOrThrow(ChatRequest, json);
    const upstreams = upstreamsFor(caller, request.model, allowedModels(), "chat/completions");
    const attempt = await forward(upstreams, text, c.req.raw);
    const { res, release } = attempt;
    const samHeaders = samHeadersOf(attempt);
    if (!res.ok) throw await failure(attempt, samHeaders);
    const toolNames = request.tools?.length ? new Set(request.tools.map((t) => t.function.name)) : NO_TOOLS;
    const seed = `chatcmpl-${crypto.randomUUID()}`;
    const record = (u: { promptTokens: number; completionTokens: number } | null, completionChars: number) => {
      usage.record({
        keyId: caller.keyId,
        keyName: caller.name,
        model: request.model,
        promptTokens: u?.promptTokens ?? estimateTokens(text.length),
        completionTokens: u?.completionTokens ?? estimateTokens(completionChars),
        estimated: u === null,
      });
    };

    if ((res.headers.get("content-type") ?? "").includes("text/event-stream") && res.body) {
      const normaliser = new StreamNormaliser(toolNames, seed, request.model);
      const body = proxyStream(res.body, normaliser, (end) => record(end.usage, end.completionChars), idle);
      // From here a client that goes away cancels `body`, and with it the upstream's: the client watch
      // would only add a cancellation watch per stream (see `send`).
      release();
      return respond(body, "text/event-stream; charset=utf-8", limitHeaders, samHeaders, STREAM_HEADERS);
    }
    let raw: string;
    try {
      raw = await res.text();
    } finally {
      release();
    }
    const out = normaliseCompletion(raw, toolNames, seed);
    record(out.usage, out.completionChars);
    return respond(out.body, "application/json", limitHeaders, samHeaders);
  });

  app.post("/v1/embeddings", async (c) => {
    const { caller, limitHeaders } = await admit(c);
    const { text, json } = await jsonBody(c, "embeddings request");
    const request = parseOrThrow(EmbeddingRequest, json);
    const upstreams = upstreamsFor(caller, request.model, allowedEmbeddingModels(), "embeddings");
    const base64 = request.encoding_format === "base64";
    const attempt = await forward(upstreams, upstreamEmbeddingBody(text, request, base64), c.req.raw);
    const samHeaders = samHeadersOf(attempt);
    if (!attempt.res.ok) throw await failure(attempt, samHeaders);
    let raw: string;
    try {
      raw = await attempt.res.text();
    } finally {
      attempt.release();
    }
    const out = finishEmbeddings(raw, base64);
    usage.record({
      keyId: caller.keyId,
      keyName: caller.name,
      model: request.model,
      promptTokens: out.promptTokens ?? estimateTokens(text.length),
      completionTokens: 0,
      estimated: out.promptTokens === null,
    });
    return respond(out.body, "application/json", limitHeaders, samHeaders);
  });

  app.get("/v1/models", async (c) => {
    await inferenceCaller(c, authenticate);
    const created = Math.floor(Date.now() / 1000);
    const allowed = inference.models ??
      (mode === "openai-compatible" ? null : [...allowedModels()!, ...allowedEmbeddingModels()!]);
    if (allowed) return c.json({ object: "list", data: allowed.map((id) => modelObject({ id }, created)) });
    // A generic upstream without an allowlist: its own list is the truth.
    const headers: Record<string, string> = {};
    if (config.inference.key) headers.authorization = `Bearer ${config.inference.key}`;
    let res: Response;
    try {
      res = await doFetch(`${config.inference.url}/models`, {
        headers,
        signal: AbortSignal.timeout(inference.firstByteTimeoutMs),
      });
    } catch (err) {
      throw new HttpError(502, `cannot list the upstream's models: ${(err as Error).message.slice(0, 200)}`, {
        code: "upstream_unreachable",
      });
    }
    if (!res.ok) throw await upstreamError(res, "openai-compatible");
    const body = await res.json().catch(() => null) as { data?: { id?: unknown }[] } | null;
    const ids = (body?.data ?? []).map((m) => m.id).filter((id): id is string => typeof id === "string");
    return c.json({ object: "list", data: ids.map((id) => modelObject({ id }, created)) });
  });

  const Day = v.optional(v.pipe(v.string(), v.isoDate("must be a date like 2025-01-31")));
  const UsageQuery = v.object({ key: v.optional(v.string()), from: Day, to: Day });

  app.get("/api/usage", async (c) => {
    const caller = await identify(c, authenticate);
    const q = parseOrThrow(UsageQuery, c.req.query());
    let keyId = q.key;
    if (caller.kind === "key") {
      if (keyId !== undefined && keyId !== caller.keyId) {
        throw new HttpError(403, "an API key can read only its own usage", { code: "forbidden" });
      }
      keyId = caller.keyId;
    } else if (caller.kind !== "admin") {
      throw new HttpError(403, "usage is readable with the admin token or an API key", { code: "forbidden" });
    }
    const from = q.from ?? new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10);
    const to = q.to ?? new Date().toISOString().slice(0, 10);
    const rows = await usage.query({ keyId, from, to });
    const totals = rows.reduce(
      (t, r) => ({
        requests: t.requests + r.requests,
        promptTokens: t.promptTokens + r.promptTokens,
        completionTokens: t.completionTokens + r.completionTokens,
      }),
      { requests: 0, promptTokens: 0, completionTokens: 0 },
    );
    return c.json({ from, to, key: keyId ?? null, totals, rows });
  });

  mountResponses(app, {
    admit: admitted,
    complete,
    caller: (c) => inferenceCaller(c, authenticate),
    respond,
    usage,
    store: new ResponseStore(deps.db, config.timeouts.responseRetention, inference.maxBodyBytes),
    idle,
    log,
  });

  return {
    app,
    usage,
    setUpstreamMode(m) {
      mode = m;
    },
    upstreamMode: () => mode,
    close: () => {
      deadlines.close();
      clientWatch.close();
      idle.deadlines.close();
      return usage.close();
    },
  };
}
