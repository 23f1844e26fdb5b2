import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import { inProcessApi } from "./api-client.ts";
import { createAdminRoutes } from "./routes.tsx";
import { ADMIN_TOKEN, mountOverFake } from "../testing/admin-mount.ts";
import { UNREACHABLE_MESSAGE, UNREACHABLE_NODE } from "../testing/admin-api-fake.ts";

const { app, fake, sessions } = mountOverFake();
const cookie = `sam_admin=${(await sessions.open({ userAgent: null })).secret}`;
const get = (path: string, headers: Record<string, string> = { Cookie: cookie }) => app.request(path, { headers });
const login = (token: string, next = "/admin/nodes", url = "http://localhost/admin/login") =>
  app.request(url, {
    method: "POST",
    body: new URLSearchParams({ token, next }),
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
  });

describe("admin auth", () => {
  test("logging in sets an HttpOnly, SameSite=Strict cookie scoped to /admin and returns to the page asked for", async () => {
    const res = await login(ADMIN_TOKEN, "/admin/nodes/node-ok");
    expect(res.status).toBe(303);
    expect(res.headers.get("Location")).toBe("/admin/nodes/node-ok");
    const set = res.headers.get("Set-Cookie")!;
    // The cookie names a session; the admin token itself never goes into it.
    expect(set).toMatch(/^sam_admin=samsess_\w+;/);
    expect(set).not.toContain(ADMIN_TOKEN);
    expect(set).toMatch(/HttpOnly/);
    expect(set).toMatch(/SameSite=Strict/);
    expect(set).toMatch(/Path=\/admin/);
    expect(set).not.toMatch(/Secure/);
  });

  test("over https the cookie is also Secure", async () => {
    const res = await login(ADMIN_TOKEN, "/admin", "https://sam.example/admin/login");
    expect(res.headers.get("Set-Cookie")).toMatch(/; Secure/);
  });

  test("a wrong token at the form sees the form again with an error, and no cookie", async () => {
    const res = await login("samadm_wrong_wrong_wrong_wrong");
    expect(res.status).toBe(401);
    const html = await res.text();
    expect(html).toContain("That admin token was not accepted");
    expect(res.headers.get("Set-Cookie") ?? "").not.toContain("samadm_wrong");
  });

  test("no page is shown without the admin token: missing, wrong cookie or wrong bearer", async () => {
    fake.calls.length = 0;
    for (
      const path of [
        "/admin",
        "/admin/nodes",
        "/admin/nodes/node-ok",
        "/admin/nodes/node-ok/events.db",
        "/admin/tasks",
        "/admin/tasks/task-done",
        "/admin/tasks/task-run/events/stream",
        "/admin/nope",
      ]
    ) {
      const none = await get(path, {});
      expect(none.status).toBe(303);
      expect(none.headers.get("Location")).toBe(`/admin/login?next=${encodeURIComponent(path)}`);
      for (
        const headers of [{ Cookie: "sam_admin=samadm_wrong_wrong_wrong_wrong" }, {
          Authorization: "Bearer samadm_wrong_wrong_wrong_wrong",
        }] as Record<string, string>[]
      ) {
        const res = await get(path, headers);
        expect(res.status).toBe(401);
        const html = await res.text();
        expect(html).toContain("not accepted");
        expect(html).toContain('name="token"');
        expect(html).not.toContain("data-node=");
        expect(html).not.toContain(ADMIN_TOKEN);
      }
    }
    // Not one call reached the API: nothing about a node or task was even read.
    expect(fake.calls).toEqual([]);
  });

  test("an oversized or empty login form is refused with the form, not an error", async () => {
    const huge = await login("x".repeat(100_000));
    expect(huge.status).toBe(413);
    expect(await huge.text()).toContain("far longer than an admin token");
    const empty = await login("");
    expect(empty.status).toBe(401);
    expect(await empty.text()).toContain("Enter the admin token.");
  });

  test("scripts may use the bearer header instead of the cookie", async () => {
    const res = await get("/admin/nodes", { Authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(res.status).toBe(200);
  });

  test("the login page does not send a logged-in browser's `next` elsewhere", async () => {
    for (const next of ["https://evil.example/", "//evil.example/admin", "/api/config", "/admin/login"]) {
      const res = await login(ADMIN_TOKEN, next);
      expect(res.headers.get("Location")).toBe("/admin");
    }
  });

  test("logout clears the cookie and ends its session: a kept copy of the cookie no longer opens a page", async () => {
    const login = await app.request("http://localhost/admin/login", {
      method: "POST",
      body: new URLSearchParams({ token: ADMIN_TOKEN, next: "/admin/nodes" }),
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
    });
    const own = login.headers.get("Set-Cookie")!.split(";")[0]!;
    expect((await get("/admin/nodes", { Cookie: own })).status).toBe(200);
    const res = await app.request("/admin/logout", { method: "POST", headers: { Cookie: own } });
    expect(res.status).toBe(303);
    expect(res.headers.get("Set-Cookie")).toMatch(/sam_admin=;.*Max-Age=0/);
    const after = await get("/admin/nodes", { Cookie: own });
    expect(after.status).toBe(401);
    expect(await after.text()).toContain("Log in again");
  });

  test("X-Forwarded-Proto does not make the cookie Secure unless the proxy is trusted", async () => {
    const res = await app.request("http://localhost/admin/login", {
      method: "POST",
      body: new URLSearchParams({ token: ADMIN_TOKEN, next: "/admin" }),
      headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-Proto": "https" },
    });
    expect(res.headers.get("Set-Cookie")).not.toMatch(/Secure/);
    const behindProxy = new Hono();
    behindProxy.route(
      "/admin",
      createAdminRoutes({
        api: inProcessApi(fake.app, ADMIN_TOKEN),
        adminToken: ADMIN_TOKEN,
        sessions,
        trustProxy: true,
      }),
    );
    const trusted = await behindProxy.request("http://localhost/admin/login", {
      method: "POST",
      body: new URLSearchParams({ token: ADMIN_TOKEN, next: "/admin" }),
      headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-Proto": "https" },
    });
    expect(trusted.headers.get("Set-Cookie")).toMatch(/; Secure/);
  });
});

describe("admin pages", () => {
  test("the nodes list shows status, heartbeat age, provider, tasks and the last resources of every node", async () => {
    const res = await get("/admin/nodes");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Security-Policy")).toContain("script-src 'self'");
    const html = await res.text();
    expect(html).toContain('data-node="node-ok"');
    expect(html).toContain('data-node="node-gone"');
    expect(html).toContain("12 s ago");
    expect(html).toContain("hetzner");
    expect(html).toMatch(/\d+(\.\d)? GiB \/ 8\.0 GiB/);
  });

  test("a node page draws its boot waterfall, charts and event log from the API", async () => {
    fake.calls.length = 0;
    const res = await get("/admin/nodes/node-ok?window=1h");
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('data-phase="create call → server running"');
    expect(html).toContain('data-phase="node-install"');
    expect(html.match(/<circle class="pt"/g)?.length).toBe(59 + 60 + 60);
    expect(html).toContain("heartbeat failed: edge answered 503");
    expect(fake.calls).toContain("/api/nodes/node-ok/metrics?window=1h");
  });

  test("the event filters reach the API and narrow the log", async () => {
    fake.calls.length = 0;
    const html = await (await get("/admin/nodes/node-ok?level=warn&type=heartbeat.failed")).text();
    expect(fake.calls).toContain("/api/nodes/node-ok/events?limit=100&level=warn&type=heartbeat.failed");
    expect(html).toContain("heartbeat failed");
    expect(html).not.toContain("agent 0.1.0 started");
  });

  test("a week of samples is drawn with a bounded number of points", async () => {
    const html = await (await get("/admin/nodes/node-ok?window=7d")).text();
    const n = html.match(/<circle class="pt"/g)?.length ?? 0;
    expect(n).toBeGreaterThan(3 * 100);
    expect(n).toBeLessThanOrEqual(3 * 240);
  });

  test("bad filters are a 400 page naming the field; an unknown node is a 404 page", async () => {
    const bad = await get("/admin/nodes/node-ok?window=2y");
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("window must be one of 1h, 24h, 7d");
    const badType = await get("/admin/nodes/node-ok?type=%3Cscript%3E");
    expect(badType.status).toBe(400);
    const missing = await get("/admin/nodes/nope");
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain("no node nope");
    const nowhere = await get("/admin/no/such/page");
    expect(nowhere.status).toBe(404);
    expect(nowhere.headers.get("Content-Type")).toContain("text/html");
    const badId = await get("/admin/nodes/..%2F..%2Fapi%2Fconfig");
    expect([400, 404]).toContain(badId.status);
  });

  test("an unreachable node's page says so with the reason and the last known state", async () => {
    const res = await get(`/admin/nodes/${UNREACHABLE_NODE}`);
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('id="unreachable"');
    expect(html).toContain(UNREACHABLE_MESSAGE);
    expect(html).toContain("last heartbeat 25m 00s ago");
    expect(html).toContain("unterminated: no END marker");
    expect(html).toContain('data-status="failed"');
  });

  test("the downloads stream the agent's SQLite file as an attachment", async () => {
    for (const kind of ["events", "metrics"]) {
      const res = await get(`/admin/nodes/node-ok/${kind}.db`);
      expect(res.status).toBe(200);
      expect(res.headers.get("Content-Type")).toBe("application/vnd.sqlite3");
      expect(res.headers.get("Content-Disposition")).toContain("attachment");
      const db = Database.deserialize(new Uint8Array(await res.arrayBuffer()));
      expect(db.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
      expect(db.query(`SELECT count(*) AS n FROM ${kind}`).get()).toEqual({ n: 25 });
      db.close();
    }
  });

  test("a download from an unreachable node is a page with its message, not a broken file", async () => {
    const res = await get(`/admin/nodes/${UNREACHABLE_NODE}/events.db`);
    expect(res.status).toBe(504);
    expect(res.headers.get("Content-Type")).toContain("text/html");
    const html = await res.text();
    expect(html).toContain(UNREACHABLE_MESSAGE);
    expect(html).toContain("Last known: status ready, health unhealthy");
  });

  test("the tasks list and a finished task show where the time went and the result", async () => {
    const list = await (await get("/admin/tasks")).text();
    expect(list).toContain('data-task="task-done"');
    const html = await (await get("/admin/tasks/task-done")).text();
    expect(html).toContain("Fixed the race in the parser test.");
    expect(html).toContain('data-phase="boot"');
    expect(html).toContain("3m 00s");
    expect(html).toContain("all tests pass");
    expect(html).not.toContain("live-log.js");
  });

  test("a running task's page follows its log through the admin SSE proxy", async () => {
    const html = await (await get("/admin/tasks/task-run")).text();
    expect(html).toContain('data-stream="/admin/tasks/task-run/events/stream"');
    expect(html).toContain("/admin/assets/live-log.js");
    const res = await get("/admin/tasks/task-run/events/stream");
    expect(res.headers.get("Content-Type")).toContain("text/event-stream");
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    fake.pushTaskEvent("task-run", { at: Date.now(), type: "log", stream: "stdout", message: "wrote src/cli.ts" });
    fake.pushTaskEvent("task-run", { at: Date.now(), type: "status", status: "succeeded", message: "" });
    const deadline = Date.now() + 3000;
    while (!text.includes("event: end") && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    expect(text).toContain("reading src/cli.ts");
    expect(text).toContain("wrote src/cli.ts");
    expect(text).toContain("event: end");
  });

  test("assets are served from our own origin without credentials", async () => {
    const css = await app.request("/admin/assets/admin.css");
    expect(css.status).toBe(200);
    expect(css.headers.get("Content-Type")).toContain("text/css");
    const js = await app.request("/admin/assets/live-log.js");
    expect(await js.text()).toContain("EventSource");
  });
});
