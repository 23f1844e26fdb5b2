/**
 * Error rendering for the Hono apps of both sides (edge and agent): every failure leaves as the one JSON
 * error shape, never a stack trace. Each side says only what differs: how it words Hono's own auth and
 * size refusals, and where an unexpected error is reported.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { errorBody, errorTypeFor, HttpError } from "./errors.ts";

export type ErrorRendererOptions = {
  /** Wording for the statuses Hono's middleware (bearer-auth, body-limit) throws; falls back to its message. */
  messages?: Partial<Record<number, string>>;
  /** Told about an unexpected error (log it, record it); the client gets a generic 500. */
  onUnexpected(err: Error, c: Context): void;
  /** Where the operator finds the details of a 500, e.g. "see the edge log". */
  internalHint: string;
};

export function createErrorRenderer(opts: ErrorRendererOptions) {
  return function renderError(err: Error, c: Context): Response {
    if (err instanceof HttpError) return c.json(err.toBody(), err.status as 400, err.headers);
    if (err instanceof HTTPException) {
      const status = err.status;
      const message = opts.messages?.[status] ??
        (err.message || (status === 401 ? "missing or invalid credentials" : "request refused"));
      const headers: Record<string, string> = {};
      const www = err.res?.headers.get("WWW-Authenticate");
      if (www) headers["WWW-Authenticate"] = www;
      return c.json(errorBody(message, errorTypeFor(status), null), status, headers);
    }
    opts.onUnexpected(err, c);
    return c.json(errorBody(`internal error; ${opts.internalHint}`, "server_error", "internal"), 500);
  };
}

export function renderNotFound(c: Context): Response {
  return c.json(errorBody(`no route for ${c.req.method} ${c.req.path}`, "not_found_error", "route_not_found"), 404);
}
