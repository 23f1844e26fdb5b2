/**
 * Who may see the admin pages: the admin token, from an `Authorization: Bearer` header (scripts) or from
 * the HttpOnly, SameSite=Strict cookie the login form sets (browsers). Compared in constant time. A missing
 * credential is sent to the login form; a wrong one sees the form again with an error, never a page.
 */
import type { Context, MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { timingSafeEqualString } from "../auth/tokens.ts";

export const ADMIN_COOKIE = "sam_admin";

export type Credential = { token: string; from: "bearer" | "cookie" } | null;

export function credentialOf(c: Context): Credential {
  const auth = c.req.header("Authorization");
  const bearer = auth?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
  if (bearer) return { token: bearer, from: "bearer" };
  const cookie = getCookie(c, ADMIN_COOKIE);
  return cookie ? { token: cookie, from: "cookie" } : null;
}

/** HTTPS as the browser sees it, also behind a TLS-terminating proxy. */
function servedOverHttps(c: Context): boolean {
  return new URL(c.req.url).protocol === "https:" || c.req.header("X-Forwarded-Proto") === "https";
}

export function rememberAdmin(c: Context, token: string, basePath: string): void {
  setCookie(c, ADMIN_COOKIE, token, {
    path: basePath,
    httpOnly: true,
    sameSite: "Strict",
    secure: servedOverHttps(c),
    maxAge: 7 * 24 * 3600,
  });
}

export function forgetAdmin(c: Context, basePath: string): void {
  deleteCookie(c, ADMIN_COOKIE, { path: basePath, httpOnly: true, sameSite: "Strict", secure: servedOverHttps(c) });
}

/** Only a path inside the admin pages is a place to return to after logging in (no open redirect). */
export function safeNext(next: unknown, basePath: string): string {
  if (typeof next !== "string") return basePath;
  const ok = next === basePath || (next.startsWith(`${basePath}/`) && !next.startsWith("//") && !/[\\\r\n]/.test(next));
  return ok && !next.startsWith(`${basePath}/login`) ? next : basePath;
}

export type LoginPage = (c: Context, opts: { status: 401 | 413; error: string | null; next: string }) => Response | Promise<Response>;

export function adminSession(opts: { adminToken: string; basePath: string; loginPage: LoginPage }): MiddlewareHandler {
  return async function adminSessionGuard(c, next) {
    const cred = credentialOf(c);
    const here = c.req.path + (new URL(c.req.url).search);
    if (cred === null) {
      if (c.req.method === "GET") return c.redirect(`${opts.basePath}/login?next=${encodeURIComponent(here)}`, 303);
      return opts.loginPage(c, { status: 401, error: "Log in with the admin token first.", next: opts.basePath });
    }
    if (!timingSafeEqualString(cred.token, opts.adminToken)) {
      if (cred.from === "cookie") forgetAdmin(c, opts.basePath);
      return opts.loginPage(c, { status: 401, error: "That admin token was not accepted. Log in again.", next: safeNext(here, opts.basePath) });
    }
    await next();
  };
}
