/**
 * Who may see the admin pages: the admin token from an `Authorization: Bearer` header (scripts, compared in
 * constant time), or a live session from the HttpOnly, SameSite=Strict cookie the login form sets
 * (browsers). The cookie holds a random session secret, never the admin token. A missing credential is
 * sent to the login form; a wrong or ended one sees the form again with an error, never a page.
 */
import type { Context, MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { timingSafeEqualString } from "../auth/tokens.ts";
import type { AdminSessions } from "../sessions/store.ts";

export const ADMIN_COOKIE = "sam_admin";

export type Credential = { token: string; from: "bearer" | "cookie" } | null;

export function credentialOf(c: Context): Credential {
  const auth = c.req.header("Authorization");
  const bearer = auth?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
  if (bearer) return { token: bearer, from: "bearer" };
  const cookie = getCookie(c, ADMIN_COOKIE);
  return cookie ? { token: cookie, from: "cookie" } : null;
}

/**
 * HTTPS as the browser sees it. Behind a TLS-terminating proxy only with `SAM_TRUST_PROXY=1`: otherwise any
 * client could send `X-Forwarded-Proto` and decide the cookie's `Secure` flag.
 */
function servedOverHttps(c: Context, trustProxy: boolean): boolean {
  return new URL(c.req.url).protocol === "https:" || (trustProxy && c.req.header("X-Forwarded-Proto") === "https");
}

export type CookieOptions = { basePath: string; trustProxy: boolean };

export function rememberAdmin(
  c: Context,
  session: { secret: string; expiresAt: number },
  o: CookieOptions,
  now = Date.now(),
): void {
  setCookie(c, ADMIN_COOKIE, session.secret, {
    path: o.basePath,
    httpOnly: true,
    sameSite: "Strict",
    secure: servedOverHttps(c, o.trustProxy),
    maxAge: Math.max(1, Math.floor((session.expiresAt - now) / 1000)),
  });
}

export function forgetAdmin(c: Context, o: CookieOptions): void {
  deleteCookie(c, ADMIN_COOKIE, {
    path: o.basePath,
    httpOnly: true,
    sameSite: "Strict",
    secure: servedOverHttps(c, o.trustProxy),
  });
}

/** Whether a credential admits its holder: the admin token as a bearer, a live session as a cookie. */
export async function admitted(cred: Credential, adminToken: string, sessions: AdminSessions): Promise<boolean> {
  if (cred === null) return false;
  if (cred.from === "bearer") return timingSafeEqualString(cred.token, adminToken);
  return await sessions.check(cred.token);
}

/** Only a path inside the admin pages is a place to return to after logging in (no open redirect). */
export function safeNext(next: unknown, basePath: string): string {
  if (typeof next !== "string") return basePath;
  const ok = next === basePath || (next.startsWith(`${basePath}/`) && !next.startsWith("//") && !/[\\\r\n]/.test(next));
  return ok && !next.startsWith(`${basePath}/login`) ? next : basePath;
}

export type LoginPage = (
  c: Context,
  opts: { status: 401 | 413; error: string | null; next: string },
) => Response | Promise<Response>;

export function adminSession(
  opts: { adminToken: string; sessions: AdminSessions; cookie: CookieOptions; loginPage: LoginPage },
): MiddlewareHandler {
  const basePath = opts.cookie.basePath;
  return async function adminSessionGuard(c, next) {
    const cred = credentialOf(c);
    const here = c.req.path + (new URL(c.req.url).search);
    if (cred === null) {
      if (c.req.method === "GET") return c.redirect(`${basePath}/login?next=${encodeURIComponent(here)}`, 303);
      return opts.loginPage(c, { status: 401, error: "Log in with the admin token first.", next: basePath });
    }
    if (!(await admitted(cred, opts.adminToken, opts.sessions))) {
      if (cred.from === "cookie") forgetAdmin(c, opts.cookie);
      const error = cred.from === "cookie"
        ? "Your session was not accepted (logged out, expired or revoked). Log in again."
        : "That admin token was not accepted. Log in again.";
      return opts.loginPage(c, { status: 401, error, next: safeNext(here, basePath) });
    }
    await next();
  };
}
