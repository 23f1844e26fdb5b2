/**
 * Test wiring for the inference routes: the Hono app served over real HTTP (`Bun.serve`, port 0), a real
 * libSQL file database with the usage migration, and an `Authenticate` over a map of tokens — the edge's
 * own auth is wired by the composition root, not here.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Caller } from "../auth/caller.ts";
import { type EdgeConfig, loadEdgeConfig } from "../config.ts";
import { type Client, openDatabase } from "../db/client.ts";
import { migrate } from "../db/migrate.ts";
import { loadInferenceConfig } from "../inference/config.ts";
import { createInferenceRoutes, type Inference } from "../inference/routes.ts";
import { INFERENCE_MIGRATIONS } from "../inference/usage.ts";
import type { CloudflareFake } from "./cloudflare-fake.ts";

export const TOKENS = {
  alice: "sam_alice_key_for_tests",
  bob: "sam_bob_key_for_tests",
  task: "samtask_alice_task_token",
  admin: "samadm_admin_token_for_tests",
  node: "samnode_node_token_for_tests",
} as const;

export const CALLERS: Record<string, Caller> = {
  [TOKENS.alice]: { kind: "key", keyId: "key_alice", name: "alice", rateLimitPerMinute: null },
  [TOKENS.bob]: { kind: "key", keyId: "key_bob", name: "bob", rateLimitPerMinute: 2 },
  [TOKENS.task]: {
    kind: "task",
    taskId: "task_1",
    keyId: "key_alice",
    name: "alice",
    nodeId: "node_7",
    rateLimitPerMinute: null,
  },
  [TOKENS.admin]: { kind: "admin" },
  [TOKENS.node]: { kind: "node", nodeId: "node_7" },
};

/** The environment that points every Cloudflare base URL at the fake. */
export function fakeEnv(fake: CloudflareFake, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CF_ACCOUNT_ID: fake.accountId,
    CF_API_TOKEN: fake.apiToken,
    SAM_CF_API_BASE: fake.apiBase,
    SAM_CF_GATEWAY_BASE: fake.gatewayBase,
    ...extra,
  };
}

export type Served = {
  url: string;
  baseURL: string;
  config: EdgeConfig;
  inference: Inference;
  db: Client;
  logs: string[];
  close(): Promise<void>;
};

export async function serveInference(env: Record<string, string>): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), "sam-inference-"));
  const config = loadEdgeConfig({ SAM_DATA_DIR: dir, ...env });
  const db = await openDatabase(`file:${join(dir, "sam.db")}`, null);
  await migrate(db, INFERENCE_MIGRATIONS);
  const logs: string[] = [];
  const inference = createInferenceRoutes({
    config,
    inference: loadInferenceConfig(env),
    authenticate: async (token) => CALLERS[token] ?? null,
    db,
    log: (line) => logs.push(line),
  });
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", idleTimeout: 30, fetch: inference.app.fetch });
  const url = `http://127.0.0.1:${server.port}`;
  return {
    url,
    baseURL: `${url}/v1`,
    config,
    inference,
    db,
    logs,
    async close() {
      await server.stop(true);
      await inference.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
