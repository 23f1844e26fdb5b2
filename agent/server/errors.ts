/** The agent's error rendering: every failure leaves as the one JSON error shape, never a stack trace. */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { errorBody, errorTypeFor, HttpError } from "../../shared/errors.ts";
import type { EventRecorder } from "../contracts.ts";

export function errorRenderer(events: EventRecorder) {
  return function renderError(err: Error, c: Context): Response {
    if (err instanceof HttpError) return c.json(err.toBody(), err.status as 400, err.headers);
    if (err instanceof HTTPException) {
      // Hono's own middleware (bearer-auth, body-limit) throws these; keep the status, use our shape.
      const status = err.status;
      const message = status === 401 ? "missing or invalid agent token"
        : status === 400 ? "malformed Authorization header; expected 'Bearer <agent token>'"
        : status === 413 ? "request body too large" : err.message || "request refused";
      const headers: Record<string, string> = {};
      const www = err.res?.headers.get("WWW-Authenticate");
      if (www) headers["WWW-Authenticate"] = www;
      return c.json(errorBody(message, errorTypeFor(status), null), status, headers);
    }
    events.record({ type: "error", level: "error", message: `${c.req.method} ${c.req.path}: ${err.message}` });
    return c.json(errorBody("internal error; see the agent's event log", "server_error", "internal"), 500);
  };
}

export function renderNotFound(c: Context): Response {
  return c.json(errorBody(`no route for ${c.req.method} ${c.req.path}`, "not_found_error", "route_not_found"), 404);
}
