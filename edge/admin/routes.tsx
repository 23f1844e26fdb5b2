/**
 * The admin pages (README § Admin pages), mounted by the edge at `/admin`. They read everything
 * through the edge's own JSON API (`api`, in-process, as the admin), render it server-side with `hono/jsx`,
 * and proxy the two SQLite downloads and a task's live log so the browser's cookie is all it needs.
 */
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import * as v from "valibot";
import { withinBodyDeadline } from "../../shared/body-deadline.ts";
import { HttpError } from "../../shared/errors.ts";
import { NodeMetricsView, NodeView, pageOf, TaskEventView, TaskView } from "../../shared/wire/api.ts";
import { Id } from "../../shared/wire/common.ts";
import { NodeEvent } from "../../shared/wire/events.ts";
import { parseOrThrow } from "../../shared/validate.ts";
import { type AdminApi, failureOf, fetchView, requireView } from "./api-client.ts";
import { ADMIN_CSS } from "./assets/admin-css.ts";
import { LIVE_LOG_JS } from "./assets/live-log.ts";
import { WINDOWS } from "./series.ts";
import { adminSession, admitted, credentialOf, forgetAdmin, rememberAdmin, safeNext } from "./session.ts";
import type { AdminSessions } from "../sessions/store.ts";
import { timingSafeEqualString } from "../auth/tokens.ts";
import { ErrorPage } from "./views/layout.tsx";
import { LoginPage } from "./views/login.tsx";
import { NodePage, Unreachable } from "./views/node.tsx";
import { NodesPage } from "./views/nodes.tsx";
import { TaskPage } from "./views/task.tsx";
import { TasksPage } from "./views/tasks.tsx";

export type AdminRoutesOptions = {
  /** The edge's JSON API, called in-process with the admin bearer (see `inProcessApi`). */
  api: AdminApi;
  adminToken: string;
  /** Where a login's session lives; the cookie carries only its secret. */
  sessions: AdminSessions;
  /** Believe `X-Forwarded-Proto` for the cookie's `Secure` flag (`SAM_TRUST_PROXY=1`). */
  trustProxy?: boolean;
  /** Where the routes are mounted; links and the cookie's path follow it. */
  basePath?: string;
  now?: () => number;
};

const NodeQuery = v.object({
  window: v.optional(
    v.picklist(Object.keys(WINDOWS) as (keyof typeof WINDOWS)[], "window must be one of 1h, 24h, 7d"),
    "1h",
  ),
  level: v.optional(v.picklist(["", "debug", "info", "warn", "error"], "level must be debug, info, warn or error"), ""),
  type: v.optional(
    v.pipe(v.string(), v.regex(/^[A-Za-z0-9._-]{0,64}$/, "type must be an event type such as boot.phase")),
    "",
  ),
});
const Cursor = v.optional(v.pipe(v.string(), v.maxLength(512)));
const NodesPageView = pageOf(NodeView);
const TasksPageView = pageOf(TaskView);
const NodeEventsView = pageOf(NodeEvent);
const TaskEventsView = pageOf(TaskEventView);
/** A finished task's log is shown whole, up to this many API pages. */
const MAX_LOG_PAGES = 20;

// The pages need no inline script and no third party: say so to the browser.
const SECURITY_HEADERS = {
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "Cache-Control": "no-store",
};

export function createAdminRoutes(opts: AdminRoutesOptions): Hono {
  const base = (opts.basePath ?? "/admin").replace(/\/+$/, "");
  const now = opts.now ?? Date.now;
  const api = opts.api;
  const cookie = { basePath: base, trustProxy: opts.trustProxy ?? false };
  const app = new Hono();

  app.use("*", async (c, next) => {
    await next();
    for (const [k, val] of Object.entries(SECURITY_HEADERS)) if (!c.res.headers.has(k)) c.res.headers.set(k, val);
  });
  app.onError((err, c) => {
    if (err instanceof HttpError) {
      return c.html(<ErrorPage base={base} status={err.status} message={err.message} />, err.status as 400);
    }
    console.error(`sam admin: unhandled error on ${c.req.method} ${c.req.path}:`, (err as Error).message);
    return c.html(<ErrorPage base={base} status={500} message="The page failed to render; see the edge log." />, 500);
  });

  const asset = (body: string, type: string) => (c: Context) =>
    c.body(body, 200, { "Content-Type": type, "Cache-Control": "public, max-age=300" });
  app.get("/assets/admin.css", asset(ADMIN_CSS, "text/css; charset=utf-8"));
  app.get("/assets/live-log.js", asset(LIVE_LOG_JS, "text/javascript; charset=utf-8"));

  const loginPage = (c: Context, p: { status: 401 | 200 | 413; error: string | null; next: string }) =>
    c.html(<LoginPage base={base} error={p.error} next={p.next} />, p.status);

  app.get("/login", async (c) => {
    const next = safeNext(c.req.query("next"), base);
    if (await admitted(credentialOf(c), opts.adminToken, opts.sessions)) return c.redirect(next, 303);
    return loginPage(c, { status: 200, error: null, next });
  });
  // A token is ~50 bytes; nothing larger is worth reading.
  const loginBody = bodyLimit({
    maxSize: 4096,
    onError: (c) => loginPage(c, { status: 413, error: "That is far longer than an admin token.", next: base }),
  });
  app.post("/login", loginBody, async (c) => {
    const form = await withinBodyDeadline(c.req.raw, c.req.parseBody()).catch(() => ({} as Record<string, unknown>));
    const next = safeNext(form.next, base);
    const token = typeof form.token === "string" ? form.token.trim() : "";
    if (token === "" || !timingSafeEqualString(token, opts.adminToken)) {
      forgetAdmin(c, cookie);
      return loginPage(c, {
        status: 401,
        error: token === "" ? "Enter the admin token." : "That admin token was not accepted. Try again.",
        next,
      });
    }
    rememberAdmin(c, await opts.sessions.open({ userAgent: c.req.header("User-Agent") ?? null }), cookie);
    return c.redirect(next, 303);
  });
  app.post("/logout", async (c) => {
    // The session ends on the server, so a copy of the cookie kept elsewhere stops working too.
    const cred = credentialOf(c);
    if (cred?.from === "cookie") await opts.sessions.close(cred.token);
    forgetAdmin(c, cookie);
    return c.redirect(`${base}/login`, 303);
  });

  app.use("*", adminSession({ adminToken: opts.adminToken, sessions: opts.sessions, cookie, loginPage }));

  app.get("/", (c) => c.redirect(`${base}/nodes`, 303));

  app.get("/nodes", async (c) => {
    const cursor = parseOrThrow(Cursor, c.req.query("cursor"));
    const page = await requireView(api, NodesPageView, withCursor("/api/nodes", cursor));
    return c.html(<NodesPage base={base} nodes={page.data} nextCursor={page.nextCursor} now={now()} />);
  });

  app.get("/nodes/:id", async (c) => {
    const id = nodeIdOf(c);
    const q = parseOrThrow(NodeQuery, c.req.query());
    const eventQuery = new URLSearchParams({ limit: "100" });
    if (q.level) eventQuery.set("level", q.level);
    if (q.type) eventQuery.set("type", q.type);
    const [node, metrics, events] = await Promise.all([
      requireView(api, NodeView, `/api/nodes/${id}`),
      fetchView(api, NodeMetricsView, `/api/nodes/${id}/metrics?window=${q.window}`),
      fetchView(api, NodeEventsView, `/api/nodes/${id}/events?${eventQuery}`),
    ]);
    return c.html(
      <NodePage
        base={base}
        node={node}
        window={q.window}
        metrics={metrics}
        events={events}
        filter={{ level: q.level, type: q.type }}
        now={now()}
      />,
    );
  });

  for (const kind of ["events", "metrics"] as const) {
    app.get(`/nodes/:id/${kind}.db`, async (c) => {
      const id = nodeIdOf(c);
      const res = await api(`/api/nodes/${id}/${kind}/export`);
      if (res.ok && res.body) {
        const headers = new Headers({
          "Content-Type": res.headers.get("Content-Type") ?? "application/vnd.sqlite3",
          "Content-Disposition": res.headers.get("Content-Disposition") ?? `attachment; filename="${id}-${kind}.db"`,
        });
        const length = res.headers.get("Content-Length");
        if (length) headers.set("Content-Length", length);
        // Streamed through as it comes: a week of metrics is not held in the edge's memory.
        return new Response(res.body, { status: 200, headers });
      }
      const failure = await failureOf(res);
      if (failure.status < 500) throw new HttpError(failure.status, failure.message);
      const node = await fetchView(api, NodeView, `/api/nodes/${id}`);
      return c.html(
        <Unreachable
          base={base}
          node={node.ok ? node.data : null}
          nodeId={id}
          failure={failure}
          what={`the ${kind} database`}
          now={now()}
        />,
        failure.status as 502,
      );
    });
  }

  app.get("/tasks", async (c) => {
    const cursor = parseOrThrow(Cursor, c.req.query("cursor"));
    const page = await requireView(api, TasksPageView, withCursor("/api/tasks", cursor));
    return c.html(<TasksPage base={base} tasks={page.data} nextCursor={page.nextCursor} now={now()} />);
  });

  app.get("/tasks/:id", async (c) => {
    const id = taskIdOf(c);
    const task = await requireView(api, TaskView, `/api/tasks/${id}`);
    const events: TaskEventView[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < MAX_LOG_PAGES; i++) {
      const page: Awaited<ReturnType<typeof fetchTaskEvents>> = await fetchTaskEvents(
        withCursor(`/api/tasks/${id}/events`, cursor),
      );
      if (!page.ok) break;
      events.push(...page.data.data);
      cursor = page.data.nextCursor;
      if (!cursor) break;
    }
    return c.html(<TaskPage base={base} task={task} events={events} />);
  });

  app.get("/tasks/:id/events/stream", async (c) => {
    const id = taskIdOf(c);
    const headers = new Headers({ Accept: "text/event-stream" });
    const lastEventId = c.req.header("Last-Event-ID");
    if (lastEventId && /^\d{1,15}$/.test(lastEventId)) headers.set("Last-Event-ID", lastEventId);
    const res = await api(`/api/tasks/${id}/events?follow=1`, { headers, signal: c.req.raw.signal });
    if (!res.ok || !res.body) {
      const failure = await failureOf(res);
      throw new HttpError(failure.status, failure.message);
    }
    return new Response(res.body, {
      headers: {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
      },
    });
  });

  // Behind the session guard: an admin who mistypes a URL gets a page, not the API's JSON 404.
  app.all("*", (c) => {
    throw new HttpError(404, `no admin page at ${c.req.path}`);
  });

  function fetchTaskEvents(path: string) {
    return fetchView(api, TaskEventsView, path);
  }

  return app;
}

/** Ids are checked before they go into an API path, so a crafted id cannot reach another route. */
function nodeIdOf(c: Context): string {
  return parseOrThrow(Id, c.req.param("id"), "invalid_node_id");
}
function taskIdOf(c: Context): string {
  return parseOrThrow(Id, c.req.param("id"), "invalid_task_id");
}

/** An API list path, with the page cursor when there is one. */
function withCursor(path: string, cursor: string | null | undefined): string {
  return cursor ? `${path}?cursor=${encodeURIComponent(cursor)}` : path;
}
