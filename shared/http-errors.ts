/**
 * Error rendering for the Hono apps of both sides (edge and agent): every failure leaves as the one JSON
 * error shape, never a stack trace. Each side says only what differs: how it words Hono's own auth and
 * size refusals, and where an unexpected error is reported.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { type ErrorBody, errorBody, errorTypeFor, HttpError } from "./errors.ts";

export type ErrorRendererOptions = {
  /** Wording for the statuses Hono's middleware (bearer-auth, body-limit) throws; falls back to its message. */
  messages?: Partial<Record<number, string>>;
  /** Told about an unexpected error (log it, record it); the client gets a generic 500. */
  onUnexpected(err: Error, c: Context): void;
  /** Where the operator finds the details of a 500, e.g. "see the edge log". */
  internalHint: string;
};

/** What a failure answers, before it is a response: one part of an answer that carries several (a batch). */
export type ErrorAnswer = { status: number; body: ErrorBody; headers: Record<string, string> };

export function createErrorAnswer(opts: ErrorRendererOptions) {
  return function answerError(err: Error, c: Context): ErrorAnswer {
    if (err instanceof HttpError) return { status: err.status, body: err.toBody(), headers: err.headers };
    if (err instanceof HTTPException) {
      const status = err.status;
      const message = opts.messages?.[status] ??
        (err.message || (status === 401 ? "missing or invalid credentials" : "request refused"));
      const headers: Record<string, string> = {};
      const www = err.res?.headers.get("WWW-Authenticate");
      if (www) headers["WWW-Authenticate"] = www;
      return { status, body: errorBody(message, errorTypeFor(status), null), headers };
    }
    opts.onUnexpected(err, c);
    return {
      status: 500,
      body: errorBody(`internal error; ${opts.internalHint}`, "server_error", "internal"),
      headers: {},
    };
  };
}

export function createErrorRenderer(opts: ErrorRendererOptions) {
  const answerError = createErrorAnswer(opts);
  return function renderError(err: Error, c: Context): Response {
    const { status, body, headers } = answerError(err, c);
    return c.json(body, status as 400, headers);
  };
}

export function renderNotFound(c: Context): Response {
  return c.json(errorBody(`no route for ${c.req.method} ${c.req.path}`, "not_found_error", "route_not_found"), 404);
}
