/** The edge's error rendering: every failure leaves as the JSON error shape, never a stack trace. */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { errorBody, errorTypeFor, HttpError } from "../shared/errors.ts";

export function renderError(err: Error, c: Context): Response {
  if (err instanceof HttpError) {
    return c.json(err.toBody(), err.status as 400, err.headers);
  }
  if (err instanceof HTTPException) {
    // Hono's own middleware (bearer-auth, body-limit) throws these; keep their status, use our shape.
    const status = err.status;
    const message = err.message || (status === 401 ? "missing or invalid credentials" : "request refused");
    const headers: Record<string, string> = {};
    const www = err.res?.headers.get("WWW-Authenticate");
    if (www) headers["WWW-Authenticate"] = www;
    return c.json(errorBody(message, errorTypeFor(status), null), status, headers);
  }
  console.error(`sam edge: unhandled error on ${c.req.method} ${c.req.path}:`, err);
  return c.json(errorBody("internal error; see the edge log", "server_error", "internal"), 500);
}

export function renderNotFound(c: Context): Response {
  return c.json(errorBody(`no route for ${c.req.method} ${c.req.path}`, "not_found_error", "route_not_found"), 404);
}
