/**
 * The edge's HTTP surface as a plain Hono app: no runtime globals here, so `bun test` drives it in-process
 * and the Deno entry serves the very same object.
 */
import { Hono } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { describeTimeouts } from "../shared/timeouts.ts";
import { SAM_VERSION } from "../shared/version.ts";
import type { EdgeConfig } from "./config.ts";
import { renderError, renderNotFound } from "./http-errors.ts";

export type AppDeps = {
  config: EdgeConfig;
  adminToken: string;
  startedAt: number;
};

export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.onError(renderError);
  app.notFound(renderNotFound);

  app.get("/healthz", (c) =>
    c.json({ ok: true, version: SAM_VERSION, uptimeMs: Date.now() - deps.startedAt }));

  const admin = bearerAuth({ token: deps.adminToken });

  app.get("/api/config", admin, (c) => {
    const { config } = deps;
    return c.json({
      version: SAM_VERSION,
      provider: config.provider,
      database: config.databaseUrl.startsWith("file:") ? "file" : "remote",
      inference: {
        aiGateway: config.cloudflare.aiGateway,
        workersAi: Boolean(config.cloudflare.accountId && config.cloudflare.apiToken),
        openaiCompatible: Boolean(config.inference.url),
      },
      timeouts: describeTimeouts(config.timeouts),
    });
  });

  return app;
}
