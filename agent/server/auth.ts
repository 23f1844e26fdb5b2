/**
 * The agent token check: Hono's bearer-auth (a constant-time compare), with every refusal — no header, another
 * scheme, a malformed header, a wrong token — answered 401 in the JSON error shape with a code, as the edge
 * answers its own callers. (Hono says 400 to a malformed header; to a client it is a bad credential all the
 * same, and a client that retries on 401 should not need a second rule.)
 */
import type { MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { HTTPException } from "hono/http-exception";
import { HttpError } from "../../shared/errors.ts";

export function agentAuth(token: string): MiddlewareHandler {
  const check = bearerAuth({ token });
  return async function agentTokenOnly(c, next) {
    let passed = false;
    try {
      await check(c, async () => {
        passed = true;
        await next();
      });
    } catch (err) {
      if (passed || !(err instanceof HTTPException)) throw err;
      if (!c.req.header("Authorization")) {
        throw new HttpError(401, "missing agent token: send Authorization: Bearer <agent token>", {
          code: "missing_credentials",
          headers: { "WWW-Authenticate": 'Bearer realm="sam-agent"' },
        });
      }
      throw new HttpError(401, "invalid agent token: send Authorization: Bearer <agent token>", {
        code: "invalid_credentials",
        headers: { "WWW-Authenticate": 'Bearer realm="sam-agent", error="invalid_token"' },
      });
    }
  };
}
