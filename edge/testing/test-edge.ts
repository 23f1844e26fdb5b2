/**
 * A real edge for tests (`createEdge`: a libSQL file database, the runner, the JSON API, the admin pages at
 * `/admin` as the composition root mounts them) served on an ephemeral loopback port, so agents can call back.
 * Its nodes run on the provider given (a provider double), or on the edge's own local provider, which starts
 * the real agent binary per node as `npm start` does. Tests seed it through its public API and the agents'
 * callbacks only.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { until } from "../../shared/testing/until.ts";
import { loadEdgeConfig } from "../config.ts";
import { createEdge, type Edge } from "../compose.ts";
import type { Provider } from "../providers/provider.ts";
import type { AgentDouble } from "./agent-double.ts";
import { type ApiCall, edgeApiCall } from "./api-call.ts";
import type { ProviderDouble } from "./provider-double.ts";

export const ADMIN_TOKEN = "admin-token-for-tests-0123456789";

export type TestEdge = {
  edge: Edge;
  url: string;
  dataDir: string;
  /** A call of the edge's API over HTTP, as the admin unless another token is given. */
  call: ApiCall;
  /** `rateLimitPerMinute` also bounds the key's task submissions per minute (null: the edge default, 60). */
  createKey(name?: string, rateLimitPerMinute?: number | null): Promise<{ id: string; key: string }>;
  /** Provision a node (for `ownerKeyId`) and wait until its agent has reported ready; its id. */
  provision(o?: { ownerKeyId?: string | null; timeoutMs?: number }): Promise<string>;
  stop(opts?: { keepData?: boolean }): Promise<void>;
};

/** A stable front URL for agents (like a real deployment's hostname) that can be pointed at a new edge. */
export function startFrontProxy(): { url: string; target: { url: string }; stop(): Promise<void> } {
  const target = { url: "" };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const u = new URL(req.url);
      try {
        return await fetch(`${target.url}${u.pathname}${u.search}`, {
          method: req.method,
          headers: req.headers,
          body: req.body,
        });
      } catch {
        return new Response("edge down", { status: 502 });
      }
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, target, stop: () => server.stop(true) };
}

export async function startTestEdge(
  opts: { env?: Record<string, string>; provider?: Provider; dataDir?: string } = {},
): Promise<TestEdge> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "sam-edge-"));
  const config = loadEdgeConfig({ SAM_DATA_DIR: dataDir, SAM_ADMIN_TOKEN: ADMIN_TOKEN, ...opts.env });
  const edge = await createEdge(config, {
    provider: opts.provider,
    log: process.env.SAM_TEST_LOG ? (m) => console.error(`[edge] ${m}`) : () => {},
  });
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: edge.app.fetch, idleTimeout: 0 });
  const url = `http://127.0.0.1:${server.port}`;
  edge.setPublicUrl(url);
  const t: TestEdge = {
    edge,
    url,
    dataDir,
    call: edgeApiCall(url, ADMIN_TOKEN),
    async createKey(name = "alice", rateLimitPerMinute = null) {
      const res = await t.call("POST", "/api/keys", { body: { name, rateLimitPerMinute } });
      if (res.status !== 201) throw new Error(`key creation failed: ${res.status} ${await res.text()}`);
      return (await res.json()) as { id: string; key: string };
    },
    async provision(o = {}) {
      const id = await createNode(t, o.ownerKeyId ?? null);
      await until(`node ${id} ready`, async () => (await nodeView(t, id)).status === "ready", o.timeoutMs);
      return id;
    },
    async stop(o = {}) {
      await server.stop(true);
      await edge.close();
      if (!o.keepData && !opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return t;
}

/**
 * Provision a node (for `ownerKeyId`) on a provider double whose agents wait to be told: once the provider
 * has reported the server running, its agent calls ready and heartbeats once, and the node is ready.
 */
export async function readyNode(
  t: TestEdge,
  provider: ProviderDouble,
  ownerKeyId: string | null,
): Promise<{ id: string; agent: AgentDouble }> {
  const id = await createNode(t, ownerKeyId);
  await until(
    `node ${id}'s server`,
    async () => (await nodeView(t, id)).providerTimings.some((x) => x.name === "server_running"),
  );
  const agent = provider.agents.get(id)!;
  const ready = await agent.ready();
  if (!ready.ok) throw new Error(`ready callback failed: ${ready.status} ${await ready.text()}`);
  await agent.heartbeat();
  await until(`node ${id} ready`, async () => (await nodeView(t, id)).status === "ready");
  return { id, agent };
}

async function createNode(t: TestEdge, ownerKeyId: string | null): Promise<string> {
  const res = await t.call("POST", "/api/nodes", { body: ownerKeyId ? { ownerKeyId } : {} });
  if (res.status !== 201) throw new Error(`node provisioning failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

async function nodeView(t: TestEdge, id: string): Promise<{ status: string; providerTimings: { name: string }[] }> {
  return (await t.call("GET", `/api/nodes/${id}`)).json();
}
