/**
 * `POST /v1/responses` (the OpenAI Responses API) bridged onto the chat-completions upstreams, and
 * `GET`/`DELETE /v1/responses/{id}` for stored responses. Auth, rate limits, upstream choice with the
 * gateway's fallback and tool-call repair are the chat path's own (`admit`, `complete`, `StreamNormaliser`);
 * this module only translates. Headers name what the bridge could not forward: `x-sam-dropped` (built-in
 * tools, reasoning options, …) and `x-sam-flattened` (namespaces whose functions went as `ns__name`).
 */
import type { Context, Hono } from "hono";
import { HttpError } from "../../../shared/errors.ts";
import { parseOrThrow } from "../../../shared/validate.ts";
import { normaliseCompletion, type Usage } from "../normalise.ts";
import type { Admitted, Completed } from "../routes.ts";
import { type IdleWatch, proxyStream, StreamNormaliser } from "../stream.ts";
import type { InferenceCaller } from "../upstream.ts";
import { estimateTokens, type UsageRecorder } from "../usage.ts";
import { ResponsesRequest } from "./schema.ts";
import type { ResponseStore } from "./store.ts";
import { type Finished, ResponseEvents, responsesStream } from "./stream.ts";
import { assistantMessage, type ChatMessage, type ChatPlan, toChat } from "./translate.ts";

export const DROPPED_HEADER = "x-sam-dropped";
export const FLATTENED_HEADER = "x-sam-flattened";

export type ResponsesDeps = {
  admit(c: Context): Promise<Admitted>;
  /** The caller of a request without a body (auth only). */
  caller(c: Context): Promise<InferenceCaller>;
  complete(caller: InferenceCaller, model: string, body: string, client: Request): Promise<Completed>;
  respond(body: BodyInit, contentType: string, ...headerSets: Record<string, string>[]): Response;
  usage: UsageRecorder;
  store: ResponseStore;
  /** The idle-upstream watch of streamed completions (SAM_INFERENCE_IDLE_TIMEOUT), shared with the chat route. */
  idle?: IdleWatch;
  log: (line: string) => void;
};

const STREAM_HEADERS = { "cache-control": "no-cache", connection: "keep-alive" };

function notFound(id: string): HttpError {
  return new HttpError(
    404,
    `no response '${id}' for this key: it does not exist, has expired (SAM_RESPONSE_RETENTION), was made by another key or with store: false`,
    { code: "response_not_found" },
  );
}

function bridgeHeaders(plan: ChatPlan): Record<string, string> {
  const h: Record<string, string> = {};
  if (plan.dropped.length > 0) h[DROPPED_HEADER] = plan.dropped.join(", ");
  if (plan.flattened.length > 0) h[FLATTENED_HEADER] = plan.flattened.join(", ");
  return h;
}

export function mountResponses(app: Hono, deps: ResponsesDeps): void {
  const { admit, complete, respond, usage, store, log } = deps;

  app.post("/v1/responses", async (c) => {
    const { caller, limitHeaders, json } = await admit(c);
    const request = parseOrThrow(ResponsesRequest, json);
    let previous: ChatMessage[] | null = null;
    if (request.previous_response_id) {
      const stored = await store.get(request.previous_response_id, caller.keyId);
      if (!stored) throw notFound(request.previous_response_id);
      previous = stored.history;
    }
    const plan = toChat(request, previous);
    const body = JSON.stringify(plan.chat);
    const { res, release, samHeaders } = await complete(caller, request.model, body, c.req.raw);
    const headers = bridgeHeaders(plan);

    const id = `resp_${crypto.randomUUID().replaceAll("-", "")}`;
    const base = { id, created_at: Math.floor(Date.now() / 1000), model: request.model, request };
    const events = new ResponseEvents(base, plan.tools, body.length, request.stream === true);
    const toolNames = new Set(plan.tools.keys());
    const record = (u: Usage | null, completionChars: number) =>
      usage.record({
        keyId: caller.keyId,
        keyName: caller.name,
        model: request.model,
        promptTokens: u?.promptTokens ?? estimateTokens(body.length),
        completionTokens: u?.completionTokens ?? estimateTokens(completionChars),
        estimated: u === null,
      });
    let final: Finished | null = null;
    /** Keep the response for `previous_response_id` before the client learns it is complete. */
    const keep = async (finished: Finished) => {
      final = finished;
      if (request.store === false) return;
      const reply = assistantMessage(finished.response.output);
      const history = reply ? [...plan.history, reply] : plan.history;
      try {
        if (!await store.put(id, caller.keyId, { history, response: finished.response })) {
          log(`sam inference: response ${id} is larger than SAM_INFERENCE_MAX_BODY_BYTES and was not stored`);
        }
      } catch (err) {
        log(`sam inference: storing response ${id} failed: ${(err as Error).message}`);
      }
    };

    if ((res.headers.get("content-type") ?? "").includes("text/event-stream") && res.body) {
      const normaliser = new StreamNormaliser(toolNames, `chatcmpl-${id}`, request.model);
      const chat = proxyStream(res.body, normaliser, (end) => {
        release();
        record(end.usage, end.completionChars);
      }, deps.idle);
      const stream = responsesStream(chat, events, keep);
      if (request.stream) {
        // A client that goes away now cancels `stream`, and with it the upstream's (see the chat route).
        release();
        return respond(stream, "text/event-stream; charset=utf-8", limitHeaders, samHeaders, headers, STREAM_HEADERS);
      }
      // An upstream that streamed unasked: read the events to the end and answer with the final object.
      await new Response(stream).arrayBuffer();
      if (!final) {
        throw new HttpError(502, "the upstream model server broke off its answer; retry the request", {
          code: "upstream_stream_failed",
        });
      }
      return respond(
        JSON.stringify((final as Finished).response),
        "application/json",
        limitHeaders,
        samHeaders,
        headers,
      );
    }

    let raw: string;
    try {
      raw = await res.text();
    } finally {
      release();
    }
    const out = normaliseCompletion(raw, toolNames, `chatcmpl-${id}`);
    let completion: Record<string, unknown>;
    try {
      completion = JSON.parse(out.body);
    } catch {
      throw new HttpError(502, "the upstream answered with a body that is not JSON", { code: "upstream_failed" });
    }
    const start = request.stream ? events.start() : "";
    const deltas = events.chunk(completion);
    const { events: closing, finished } = events.finish();
    record(out.usage, out.completionChars);
    await keep(finished);
    if (request.stream) {
      // A non-streaming upstream: the whole event sequence at once.
      return respond(
        start + deltas + closing + events.completed(finished),
        "text/event-stream; charset=utf-8",
        limitHeaders,
        samHeaders,
        headers,
        STREAM_HEADERS,
      );
    }
    return respond(JSON.stringify(finished.response), "application/json", limitHeaders, samHeaders, headers);
  });

  app.get("/v1/responses/:id", async (c) => {
    const caller = await deps.caller(c);
    const stored = await store.get(c.req.param("id"), caller.keyId);
    if (!stored) throw notFound(c.req.param("id"));
    return c.json(stored.response);
  });

  app.delete("/v1/responses/:id", async (c) => {
    const caller = await deps.caller(c);
    const id = c.req.param("id");
    if (!await store.delete(id, caller.keyId)) throw notFound(id);
    return c.json({ id, object: "response.deleted", deleted: true });
  });
}
