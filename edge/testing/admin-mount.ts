/** The admin routes mounted at `/admin` over the fake API, the way the edge mounts them over its own. */
import { Hono } from "hono";
import { inProcessApi } from "../admin/api-client.ts";
import { createAdminRoutes } from "../admin/routes.tsx";
import { createFakeApi, type FakeApi } from "./admin-api-fake.ts";
import { memorySessions } from "./memory-sessions.ts";

export const ADMIN_TOKEN = "samadm_test_0123456789abcdefghijklmnopqrstuv";

export function mountOverFake(
  now = Date.now(),
): { app: Hono; fake: FakeApi; sessions: ReturnType<typeof memorySessions> } {
  const fake = createFakeApi(ADMIN_TOKEN, now);
  const sessions = memorySessions();
  const app = new Hono();
  app.route(
    "/admin",
    createAdminRoutes({ api: inProcessApi(fake.app, ADMIN_TOKEN), adminToken: ADMIN_TOKEN, sessions, now: () => now }),
  );
  return { app, fake, sessions };
}
