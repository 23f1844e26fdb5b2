/**
 * A real edge (`createEdge`, real libSQL file database, real runner and API) served on an ephemeral loopback
 * port — the admin pages at `/admin` as the composition root mounts them — over stub agents (a provider of
 * this machine's own processes). Seeding goes through the edge's public API and the agents' callbacks only.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadEdgeConfig } from "../config.ts";
import { createEdge, type Edge } from "../compose.ts";
import type { StubAgent } from "./stub-agent.ts";
import { StubProvider } from "./stub-provider.ts";
import { until } from "../../shared/testing/until.ts";
import { edgeApiCall } from "./api-call.ts";
export { until } from "../../shared/testing/until.ts";

export type ServedEdge = {
  url: string;
  edge: Edge;
  provider: StubProvider;
  /** An admin call of the edge's JSON API over HTTP. */
  call(method: string, path: string, body?: unknown, token?: string): Promise<Response>;
  /** Provision a node for `ownerKeyId` and let its stub agent report ready and heartbeat once. */
  readyNode(ownerKeyId: string | null): Promise<{ id: string; agent: StubAgent }>;
  /** Provision a node and wait for it to be ready on its own (real agents). */
  provision(timeoutMs: number): Promise<string>;
  stop(): Promise<void>;
};

/** Poll `check` until it yields a value, or fail naming what never happened. */

/** `realAgents`: the edge's own local provider runs the real agent binary per node, as under `npm start`. */
export async function serveEdge(adminToken: string, opts: { realAgents?: boolean } = {}): Promise<ServedEdge> {
  const dir = mkdtempSync(join(tmpdir(), "sam-admin-edge-"));
  const provider = new StubProvider();
  const edge = await createEdge(loadEdgeConfig({ SAM_DATA_DIR: dir, SAM_ADMIN_TOKEN: adminToken }), {
    provider: opts.realAgents ? undefined : provider,
    log: () => {},
  });
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, idleTimeout: 0, fetch: edge.app.fetch });
  const url = `http://127.0.0.1:${server.port}`;
  edge.setPublicUrl(url);

  const call = edgeApiCall(url, adminToken);

  return {
    url,
    edge,
    provider,
    call,
    async readyNode(ownerKeyId) {
      const res = await call("POST", "/api/nodes", ownerKeyId ? { ownerKeyId } : {});
      if (res.status !== 201) throw new Error(`node provisioning failed: ${res.status} ${await res.text()}`);
      const { id } = (await res.json()) as { id: string };
      await until(`node ${id}'s server`, async () => {
        const node = (await (await call("GET", `/api/nodes/${id}`)).json()) as { providerTimings: { name: string }[] };
        return node.providerTimings.some((t) => t.name === "server_running");
      });
      const agent = provider.agents.get(id)!;
      const ready = await agent.ready();
      if (!ready.ok) throw new Error(`ready callback failed: ${ready.status} ${await ready.text()}`);
      await agent.heartbeat();
      await until(
        `node ${id} ready`,
        async () => ((await (await call("GET", `/api/nodes/${id}`)).json()) as { status: string }).status === "ready",
      );
      return { id, agent };
    },
    async provision(timeoutMs) {
      const res = await call("POST", "/api/nodes", {});
      if (res.status !== 201) throw new Error(`node provisioning failed: ${res.status} ${await res.text()}`);
      const { id } = (await res.json()) as { id: string };
      await until(
        `node ${id} ready`,
        async () => ((await (await call("GET", `/api/nodes/${id}`)).json()) as { status: string }).status === "ready",
        timeoutMs,
      );
      return id;
    },
    async stop() {
      await server.stop(true);
      await edge.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
