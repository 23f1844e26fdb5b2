/**
 * Slow clients: a request whose body has not fully arrived within `SAM_CLIENT_BODY_TIMEOUT` of its headers
 * is answered 408 (`Connection: close`) and its handler released, so a client trickling a body cannot hold
 * a handler for ever. Slow *headers* never reach the app: that is the server's job, and `Deno.serve` has no
 * header timeout (docs/security.md § Slow clients says what covers it).
 */
import type { MiddlewareHandler } from "hono";
import { setBodyDeadline } from "../shared/body-deadline.ts";
import { errorResponse, HttpError } from "../shared/errors.ts";
import { Deadlines } from "./inference/timer-queue.ts";

export function bodyDeadline(timeoutMs: number): MiddlewareHandler {
  // One timer for all requests (one fixed delay, so a FIFO), not a setTimeout each.
  const deadlines = new Deadlines(timeoutMs);
  const seconds = Math.round(timeoutMs / 1000);
  return async function requestBodyDeadline(c, next) {
    // Bodiless methods skip this without touching `body` (under Bun that alone builds a stream).
    if (c.req.method === "GET" || c.req.method === "HEAD") return next();
    const message = `the request body did not arrive within ${seconds}s of its headers`;
    const opts = { code: "request_timeout", headers: { Connection: "close" } };
    let timedOut = false;
    let expire!: (err: HttpError) => void;
    const expired = new Promise<never>((_, reject) => (expire = reject));
    expired.catch(() => {});
    const cancel = deadlines.add(() => {
      timedOut = true;
      expire(new HttpError(408, message, opts));
    });
    setBodyDeadline(c.req.raw, expired);
    try {
      await next();
    } finally {
      cancel();
    }
    if (timedOut && c.res.status !== 408) {
      // The handler read the body some other way and failed on it: the client's fault is its slowness.
      c.res = undefined as unknown as Response; // replace, not merge with, the handler's response headers
      c.res = errorResponse(408, message, opts);
    }
  };
}
