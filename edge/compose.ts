/**
 * The composition root: opens the database, applies migrations, resolves the admin token, builds the
 * stores, the runner and the app. Runtime-agnostic; `main.ts` (Deno) and the tests (Bun) both start the
 * edge through here.
 */
import type { Hono } from "hono";
import { inProcessApi } from "./admin/api-client.ts";
import { createAdminRoutes } from "./admin/routes.tsx";
import { createApp } from "./app.ts";
import { type AdminToken, resolveAdminToken } from "./auth/admin-token.ts";
import { createAuthenticate } from "./auth/authenticate.ts";
import type { Authenticate } from "./auth/caller.ts";
import { KeyCache } from "./auth/key-cache.ts";
import { ensurePrivateDir } from "./auth/private-files.ts";
import {
  resolveSecretKey,
  sealPlainSecrets,
  SecretBox,
  type SecretKeySource,
  verifySecretKey,
} from "./auth/secret-box.ts";
import type { EdgeConfig } from "./config.ts";
import { type Client, openDatabase } from "./db/client.ts";
import { migrate } from "./db/migrate.ts";
import { MIGRATIONS } from "./db/migrations.ts";
import { bootstrapGateway, createInferenceRoutes, INFERENCE_MIGRATIONS } from "./inference/index.ts";
import { createHetznerProvider } from "./providers/hetzner/provider.ts";
import { AgentClient, type AgentFetch } from "./nodes/agent-client.ts";
import { NodeArchive } from "./nodes/archive.ts";
import { NodeStore } from "./nodes/store.ts";
import { LocalProvider } from "./providers/local/local.ts";
import type { Provider } from "./providers/provider.ts";
import { pruneOnce } from "./retention/retention.ts";
import { Runner } from "./runner/runner.ts";
import { Wakeups } from "./tasks/wakeups.ts";
import { SessionStore } from "./sessions/store.ts";
import { TaskStore } from "./tasks/store.ts";
import type { PinnedTls } from "./nodes/pinned-fetch.ts";

export type Edge = {
  app: Hono;
  db: Client;
  admin: AdminToken;
  secretKey: Omit<SecretKeySource, "key">;
  authenticate: Authenticate;
  runner: Runner;
  provider: Provider;
  /** Where agents and coding agents reach this edge; set once it listens (SAM_PUBLIC_URL wins). */
  setPublicUrl(url: string): void;
  publicUrl(): string;
  /** The safety-net tick: applies timeouts and retries. Safe to call from any number of instances. */
  tick(): Promise<void>;
  close(): Promise<void>;
};

export type EdgeOptions = {
  /** Replaces the provider the config names (tests use a local provider running an agent double). */
  provider?: Provider;
  agentFetch?: AgentFetch;
  /** How this runtime pins an agent's certificate (edge/main.ts passes Deno's; Bun's is the default). */
  pinnedTls?: PinnedTls;
  log?: (message: string) => void;
};

export async function createEdge(config: EdgeConfig, options: EdgeOptions = {}): Promise<Edge> {
  const startedAt = Date.now();
  // The data dir holds what this instance keeps on its own disk; an edge with none (Deno Deploy) writes nothing.
  const onDisk = config.databaseUrl.startsWith("file:") || config.adminToken === null || config.secretKey === null ||
    config.provider === "local";
  if (onDisk) ensurePrivateDir(config.dataDir);
  const db = await openDatabase(config.databaseUrl, config.databaseToken);
  await migrate(db, [...MIGRATIONS, ...INFERENCE_MIGRATIONS]);
  const admin = resolveAdminToken(config.adminToken, config.dataDir);
  const { key, ...secretKey } = resolveSecretKey(config.secretKey, config.dataDir);
  const box = await SecretBox.fromKey(key);
  await verifySecretKey(db, box);
  await sealPlainSecrets(db, box);
  const keyCache = new KeyCache();
  const authenticate = createAuthenticate(db, admin.token, keyCache);
  const provider = options.provider ?? createProvider(config);
  let publicUrl = config.publicUrl ?? `http://${config.host}:${config.port}`;
  const tasks = new TaskStore(db, box);
  const nodes = new NodeStore(db, box);
  const agent = new AgentClient(options.agentFetch, box, options.pinnedTls);
  const wakeups = new Wakeups();
  const archive = new NodeArchive(db);
  const runner = new Runner({
    tasks,
    nodes,
    provider,
    agent,
    wakeups,
    timeouts: config.timeouts,
    maxNodes: config.maxNodes,
    publicUrl: () => publicUrl,
    orphanReaper: config.orphanReaper,
    archive: (node) => archive.save(node, agent),
    log: options.log,
  });
  const inference = createInferenceRoutes({
    config,
    inference: config.inferenceProxy,
    authenticate,
    db,
    log: options.log,
  });
  // Never throws: a gateway that cannot be looked up or created degrades to the REST path.
  inference.setUpstreamMode(
    await bootstrapGateway(config, {
      gatewayRateLimitPerMinute: config.inferenceProxy.gatewayRateLimitPerMinute,
      log: options.log,
    }),
  );
  const sessions = new SessionStore(db, config.timeouts.adminSession);
  const app = createApp({
    config,
    startedAt,
    db,
    authenticate,
    tasks,
    nodes,
    runner,
    agent,
    wakeups,
    sessions,
    keyRevoked: (id) => keyCache.revoked(id),
    inference,
  });
  app.route(
    "/admin",
    createAdminRoutes({
      api: inProcessApi(app, admin.token),
      adminToken: admin.token,
      sessions,
      trustProxy: config.trustProxy,
    }),
  );
  let ticking: Promise<void> | null = null;
  return {
    app,
    db,
    admin,
    secretKey,
    authenticate,
    runner,
    provider,
    setPublicUrl(url) {
      if (!config.publicUrl) publicUrl = url.replace(/\/+$/, "");
    },
    publicUrl: () => publicUrl,
    async tick() {
      // One tick at a time per instance; other instances are kept apart by the CAS transitions.
      ticking ??= runner.tick()
        .then(() => pruneOnce({ db, tasks, nodes, retention: config.retention }))
        .then(() => {})
        .finally(() => (ticking = null));
      await ticking;
    },
    async close() {
      await ticking;
      await runner.idle();
      await inference.close();
      await provider.close();
      db.close();
    },
  };
}

function createProvider(config: EdgeConfig): Provider {
  if (config.hetznerProvider) return createHetznerProvider(config.hetznerProvider);
  return new LocalProvider({
    dataDir: config.dataDir,
    command: config.agentCommand,
    heartbeatIntervalMs: config.timeouts.heartbeat,
  });
}
