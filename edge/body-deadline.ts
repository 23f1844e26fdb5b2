/**
 * Slow clients: a request whose body has not fully arrived within `SAM_CLIENT_BODY_TIMEOUT` of its headers
 * is answered 408 and its connection closed, so a client trickling a body cannot hold a connection (and the
 * handler waiting on it) for ever. Slow *headers* never reach the app: that is the server's job, and
 * `Deno.serve` has no header timeout (docs/security.md § Slow clients says what covers it).
 */
import type { MiddlewareHandler } from "hono";
import { errorBody, HttpError } from "../shared/errors.ts";

export function bodyDeadline(timeoutMs: number): MiddlewareHandler {
  return async function requestBodyDeadline(c, next) {
    const body = c.req.raw.body;
    if (!body) return next();
    let timedOut = false;
    const reader = body.getReader();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const guarded = new ReadableStream<Uint8Array>({
      start(controller) {
        timer = setTimeout(() => {
          timedOut = true;
          controller.error(new HttpError(408, "request body too slow", { code: "request_timeout" }));
          reader.cancel().catch(() => {});
        }, timeoutMs);
      },
      async pull(controller) {
        const { done, value } = await reader.read();
        if (timedOut) return;
        if (done) {
          clearTimeout(timer);
          controller.close();
        } else {
          controller.enqueue(value);
        }
      },
      cancel(reason) {
        clearTimeout(timer);
        return reader.cancel(reason);
      },
    });
    c.req.raw = new Request(c.req.raw, { body: guarded, duplex: "half" } as RequestInit);
    try {
      await next();
    } finally {
      clearTimeout(timer);
    }
    if (timedOut) {
      // Whatever the handler made of the broken body (a 400, a 500), the client's fault is its slowness.
      const seconds = Math.round(timeoutMs / 1000);
      c.res = undefined as unknown as Response; // replace, not merge with, the handler's response headers
      c.res = new Response(JSON.stringify(errorBody(`the request body did not arrive within ${seconds}s of its headers`, "invalid_request_error", "request_timeout")), {
        status: 408,
        headers: { "Content-Type": "application/json", Connection: "close" },
      });
    }
  };
}
