/**
 * Test support: an edge served on an ephemeral loopback port (so agents can call back), with helpers to
 * call its API, and a provider whose "servers" are in-process agent doubles.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadEdgeConfig } from "../config.ts";
import { createEdge, type Edge } from "../compose.ts";
import type { CreateServerInput, CreateServerResult, Provider, ProviderServer } from "../providers/provider.ts";
import { type AgentDouble, type AgentDoubleOptions, startAgentDouble } from "./agent-double.ts";
export { until } from "../../shared/testing/until.ts";

export const ADMIN = "admin-token-for-tests-0123456789";

export type TestEdge = {
  edge: Edge;
  url: string;
  dataDir: string;
  call(
    method: string,
    path: string,
    opts?: { token?: string | null; body?: unknown; raw?: string; headers?: Record<string, string> },
  ): Promise<Response>;
  /** `rateLimitPerMinute` also bounds the key's task submissions per minute (null: the edge default, 60). */
  createKey(name?: string, rateLimitPerMinute?: number | null): Promise<{ id: string; key: string }>;
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
  const config = loadEdgeConfig({ SAM_DATA_DIR: dataDir, SAM_ADMIN_TOKEN: ADMIN, ...opts.env });
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
    call(method, path, o = {}) {
      const token = o.token === undefined ? ADMIN : o.token;
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      if (token !== null) headers.Authorization = `Bearer ${token}`;
      let body: string | undefined = o.raw;
      if (o.body !== undefined) {
        body = JSON.stringify(o.body);
        headers["Content-Type"] = "application/json";
      }
      return fetch(`${url}${path}`, { method, headers, body });
    },
    async createKey(name = "alice", rateLimitPerMinute = null) {
      const res = await t.call("POST", "/api/keys", { body: { name, rateLimitPerMinute } });
      if (res.status !== 201) throw new Error(`key creation failed: ${res.status} ${await res.text()}`);
      return (await res.json()) as { id: string; key: string };
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
 * A provider whose servers are in-process agent doubles. `autoReady` makes each double call ready as soon
 * as it exists (a fast boot); without it the test decides when (or whether) the agent calls back.
 */
export class DoubleProvider implements Provider {
  readonly name = "local" as const;
  readonly agents = new Map<string, AgentDouble>();
  readonly deleted: string[] = [];
  /** What each node's server was created with (its tokens), by node id. */
  readonly inputs = new Map<string, CreateServerInput>();
  private seq = 0;

  constructor(
    private readonly o: {
      autoReady?: boolean;
      double?: Partial<AgentDoubleOptions>;
      failCreate?: boolean;
      keepOnClose?: boolean;
    } = {},
  ) {}

  async create(input: CreateServerInput): Promise<CreateServerResult> {
    if (this.o.failCreate) throw new Error("injected provider failure");
    const createdAt = Date.now();
    this.inputs.set(input.nodeId, input);
    const agent = await startAgentDouble({
      nodeId: input.nodeId,
      controlPlaneUrl: input.controlPlaneUrl,
      nodeToken: input.nodeToken,
      agentToken: input.agentToken,
      ...this.o.double,
    });
    const id = `double-${++this.seq}`;
    this.agents.set(input.nodeId, agent);
    this.servers.set(id, input.nodeId);
    // A ready call that meets an edge already stopping (the end of a test) is of no interest.
    if (this.o.autoReady) void agent.ready().catch(() => {});
    return {
      server: { id, nodeId: input.nodeId, status: "running", ipv4: "127.0.0.1", createdAt, labels: input.labels },
      timings: [{ name: "create_call", at: createdAt }, { name: "server_running", at: Date.now() }],
    };
  }

  private readonly servers = new Map<string, string>();

  async get(serverId: string): Promise<ProviderServer | null> {
    const nodeId = this.servers.get(serverId);
    return nodeId ? { id: serverId, nodeId, status: "running", ipv4: "127.0.0.1", createdAt: 0, labels: {} } : null;
  }

  async delete(serverId: string): Promise<void> {
    const nodeId = this.servers.get(serverId);
    if (!nodeId) return;
    this.servers.delete(serverId);
    this.deleted.push(nodeId);
    await this.agents.get(nodeId)?.stop();
  }

  async list(): Promise<ProviderServer[]> {
    return Promise.all([...this.servers.keys()].map(async (id) => (await this.get(id))!));
  }

  async close(): Promise<void> {
    if (this.o.keepOnClose) return; // an edge that "crashed": its servers live on
    await Promise.all([...this.servers.keys()].map((id) => this.delete(id)));
  }
}

/** Poll until `check` returns a value (not undefined/false), or fail after `timeoutMs`. */
