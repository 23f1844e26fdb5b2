/**
 * The composition root: opens the database, applies migrations, resolves the admin token and builds the
 * app. Runtime-agnostic; `main.ts` (Deno) and the tests (Bun) both start the edge through here.
 */
import type { Hono } from "hono";
import { createApp } from "./app.ts";
import { resolveAdminToken, type AdminToken } from "./auth/admin-token.ts";
import type { EdgeConfig } from "./config.ts";
import { openDatabase, type Client } from "./db/client.ts";
import { migrate } from "./db/migrate.ts";
import { MIGRATIONS } from "./db/migrations.ts";

export type Edge = {
  app: Hono;
  db: Client;
  admin: AdminToken;
  /** The safety-net tick: applies timeouts and retries. Safe to call from any number of instances. */
  tick(): Promise<void>;
  close(): Promise<void>;
};

export async function createEdge(config: EdgeConfig): Promise<Edge> {
  const startedAt = Date.now();
  const db = await openDatabase(config.databaseUrl, config.databaseToken);
  await migrate(db, MIGRATIONS);
  const admin = resolveAdminToken(config.adminToken, config.dataDir);
  const app = createApp({ config, adminToken: admin.token, startedAt });
  return {
    app,
    db,
    admin,
    async tick() {},
    async close() {
      db.close();
    },
  };
}
