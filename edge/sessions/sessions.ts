/** `GET /api/sessions` and `DELETE /api/sessions/:id` (admin only): the admin pages' logged-in browsers. */
import { Hono } from "hono";
import { HttpError } from "../../shared/errors.ts";
import type { Authenticate } from "../auth/caller.ts";
import { type CallerEnv, guard } from "../auth/guard.ts";
import type { SessionStore } from "./store.ts";

export function sessionRoutes(sessions: SessionStore, authenticate: Authenticate): Hono<CallerEnv> {
  const app = new Hono<CallerEnv>();
  app.use("*", guard(authenticate, "admin"));

  app.get("/", async (c) => c.json({ data: await sessions.list(), nextCursor: null }));

  app.delete("/:id", async (c) => {
    const id = c.req.param("id");
    if (!(await sessions.revoke(id))) {
      throw new HttpError(404, `no live admin session ${id}`, { code: "session_not_found" });
    }
    return c.json({ id, revoked: true });
  });

  return app;
}
