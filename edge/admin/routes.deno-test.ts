// The admin pages run where the edge runs in production: render them under Deno over a minimal JSON API
// serving the seeded views (the full fake needs bun:sqlite, so it stays on the Bun side).
import assert from "node:assert/strict";
import { Hono } from "hono";
import { inProcessApi } from "./api-client.ts";
import { createAdminRoutes } from "./routes.tsx";
import { memorySessions } from "../testing/memory-sessions.ts";
import { seedNodes, seedSamples } from "../testing/admin-seed.ts";

const TOKEN = "samadm_deno_0123456789abcdefghijklmnopqrst";
const now = Date.now();

const sessions = memorySessions();

function mount() {
  const api = new Hono();
  const nodes = seedNodes(now);
  api.use(
    "/api/*",
    async (
      c,
      next,
    ) => (c.req.header("Authorization") === `Bearer ${TOKEN}`
      ? next()
      : c.json({ error: { message: "no", type: "authentication_error", code: null } }, 401)),
  );
  api.get("/api/nodes/:id", (c) => c.json(nodes.find((n) => n.id === c.req.param("id"))));
  api.get(
    "/api/nodes/:id/metrics",
    (c) => c.json({ nodeId: c.req.param("id"), window: "1h", samples: seedSamples(now) }),
  );
  api.get("/api/nodes/:id/events", (c) => c.json({ data: [], nextCursor: null }));
  const app = new Hono();
  app.route("/admin", createAdminRoutes({ api: inProcessApi(api, TOKEN), adminToken: TOKEN, sessions }));
  return app;
}

Deno.test("under Deno, a logged-in admin sees a node's waterfall and charts; a wrong token sees the login form", async () => {
  const app = mount();
  const { secret } = await sessions.open({ userAgent: null });
  const ok = await app.request("/admin/nodes/node-ok", { headers: { Cookie: `sam_admin=${secret}` } });
  assert.equal(ok.status, 200);
  const html = await ok.text();
  assert.match(html, /data-phase="node-install"/);
  assert.match(html, /data-chart="cpu" data-points="59"/);

  const wrong = await app.request("/admin/nodes/node-ok", {
    headers: { Cookie: "sam_admin=samadm_wrong_wrong_wrong_wrong" },
  });
  assert.equal(wrong.status, 401);
  const page = await wrong.text();
  assert.match(page, /not accepted/);
  assert.doesNotMatch(page, /data-phase=/);
});
