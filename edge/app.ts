/**
 * The edge's HTTP surface as a plain Hono app: no runtime globals here, so `bun test` drives it in-process
 * and the Deno entry serves the very same object.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HttpError } from "../shared/errors.ts";
import { describeRequestTimeouts, describeTimeouts } from "../shared/timeouts.ts";
import { SAM_VERSION } from "../shared/version.ts";
import type { Authenticate } from "./auth/caller.ts";
import { guard } from "./auth/guard.ts";
import { bodyDeadline } from "./body-deadline.ts";
import { callbackRoutes } from "./callbacks/routes.ts";
import type { EdgeConfig } from "./config.ts";
import type { Client } from "./db/client.ts";
import { renderError, renderNotFound } from "./http-errors.ts";
import { keyRoutes } from "./keys/routes.ts";
import { KeyStore } from "./keys/store.ts";
import type { AgentClient } from "./nodes/agent-client.ts";
import { NodeArchive } from "./nodes/archive.ts";
import { nodeRoutes } from "./nodes/routes.ts";
import type { NodeStore } from "./nodes/store.ts";
import type { Runner } from "./runner/runner.ts";
import type { Wakeups } from "./tasks/wakeups.ts";
import { sessionRoutes } from "./sessions/sessions.ts";
import type { SessionStore } from "./sessions/store.ts";
import type { TaskStore } from "./tasks/store.ts";
import { TaskLimits } from "./tasks/limits.ts";
import { taskRoutes } from "./tasks/routes.ts";

export type AppDeps = {
  config: EdgeConfig;
  startedAt: number;
  db: Client;
  authenticate: Authenticate;
  tasks: TaskStore;
  nodes: NodeStore;
  runner: Runner;
  agent: AgentClient;
  wakeups: Wakeups;
  /** The admin pages' login sessions (`/api/sessions`). */
  sessions: SessionStore;
  /** Forgets a revoked API key in this instance's auth cache. */
  keyRevoked?: (keyId: string) => void;
  /** The `/v1` surface and `/api/usage` (edge/inference), and the upstream it uses after the gateway bootstrap. */
  inference: { app: Hono; upstreamMode: () => string };
};

/** Request bodies: user routes are small; agent callbacks carry log batches and patches. */
const USER_BODY_LIMIT = 1024 * 1024;
const AGENT_BODY_LIMIT = 8 * 1024 * 1024;

function limit(maxSize: number) {
  return bodyLimit({
    maxSize,
    onError: () => {
      throw new HttpError(413, `request body is larger than ${maxSize / 1024 / 1024} MiB`, { code: "body_too_large" });
    },
  });
}

export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.onError(renderError);
  app.notFound(renderNotFound);
  app.use("*", bodyDeadline(deps.config.timeouts.clientBody));

  app.get("/healthz", (c) => c.json({ ok: true, version: SAM_VERSION, uptimeMs: Date.now() - deps.startedAt }));

  app.use("/api/agent/*", limit(AGENT_BODY_LIMIT));
  app.use(
    "/api/*",
    async (c, next) => (c.req.path.startsWith("/api/agent/") ? next() : limit(USER_BODY_LIMIT)(c, next)),
  );

  app.get("/api/config", guard(deps.authenticate, "admin"), (c) => {
    const { config } = deps;
    return c.json({
      version: SAM_VERSION,
      provider: config.provider,
      database: config.databaseUrl.startsWith("file:") ? "file" : "remote",
      inference: {
        aiGateway: config.cloudflare.aiGateway,
        workersAi: Boolean(config.cloudflare.accountId && config.cloudflare.apiToken),
        openaiCompatible: Boolean(config.inference.url),
        upstream: deps.inference.upstreamMode(),
      },
      timeouts: [...describeTimeouts(config.timeouts), ...describeRequestTimeouts()],
      // What this instance's orphan reaper has deleted (or, in dry run, would have) since it started.
      orphanReaper: { mode: config.orphanReaper, ...deps.runner.orphans },
    });
  });

  const { authenticate, tasks, nodes, runner, agent, wakeups, config } = deps;
  const keys = new KeyStore(deps.db);
  app.route("/api/keys", keyRoutes(keys, authenticate, deps.keyRevoked));
  app.route(
    "/api/tasks",
    taskRoutes({
      authenticate,
      tasks,
      runner,
      wakeups,
      timeouts: config.timeouts,
      limits: new TaskLimits(config.limits),
    }),
  );
  app.route(
    "/api/nodes",
    nodeRoutes({
      authenticate,
      nodes,
      runner,
      agent,
      timeouts: config.timeouts,
      maxNodes: config.maxNodes,
      archive: new NodeArchive(deps.db),
      keyExists: (id) => keys.isActive(id),
    }),
  );
  app.route("/api/sessions", sessionRoutes(deps.sessions, authenticate));
  app.route(
    "/api/agent",
    callbackRoutes({ authenticate, tasks, nodes, runner, wakeups, taskLogMaxLines: config.taskLogMaxLines }),
  );
  // `/v1/*` and `/api/usage`: the inference routes carry their own full paths.
  app.route("/", deps.inference.app);

  return app;
}
