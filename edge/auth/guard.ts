/**
 * The route guard: reads `Authorization: Bearer …`, resolves the caller and admits only the kinds a route
 * accepts. No or unknown credential → 401; a valid credential of the wrong kind → 403.
 */
import type { MiddlewareHandler } from "hono";
import { HttpError } from "../../shared/errors.ts";
import type { Authenticate, Caller, CallerKind } from "./caller.ts";

export type CallerEnv = { Variables: { caller: Caller } };

export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

export function guard(authenticate: Authenticate, ...kinds: CallerKind[]): MiddlewareHandler<CallerEnv> {
  return async function guardCaller(c, next) {
    const token = bearerToken(c.req.header("Authorization"));
    if (token === null) {
      throw new HttpError(401, "missing credentials: send Authorization: Bearer <token>", {
        code: "missing_credentials",
        headers: { "WWW-Authenticate": 'Bearer realm="sam"' },
      });
    }
    const caller = await authenticate(token);
    if (caller === null) {
      throw new HttpError(401, "invalid, revoked or expired credentials", {
        code: "invalid_credentials",
        headers: { "WWW-Authenticate": 'Bearer realm="sam", error="invalid_token"' },
      });
    }
    if (!kinds.includes(caller.kind)) {
      throw new HttpError(403, `this route is not available to a ${describeKind(caller.kind)}`, { code: "forbidden" });
    }
    c.set("caller", caller);
    await next();
  };
}

function describeKind(kind: CallerKind): string {
  return { admin: "admin token", key: "API key", task: "task inference token", node: "node token" }[kind];
}
