// Nodes through the API: views, warm/delete, and the agent's diagnostics proxied (exports streamed through).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { NodeMetricsView, NodeView, pageOf } from "../../shared/wire/api.ts";
import { until } from "../../shared/testing/until.ts";
import { ProviderDouble } from "../testing/provider-double.ts";
import { startTestEdge, type TestEdge } from "../testing/test-edge.ts";

let t: TestEdge;
let provider: ProviderDouble;
let nodeId: string;

beforeAll(async () => {
  provider = new ProviderDouble({ autoReady: true });
  t = await startTestEdge({ provider });
  const res = await t.call("POST", "/api/nodes", { body: {} });
  expect(res.status).toBe(201);
  nodeId = v.parse(NodeView, await res.json()).id;
  await until("ready", async () => (await (await t.call("GET", `/api/nodes/${nodeId}`)).json()).status === "ready");
});
afterAll(async () => {
  await t.stop();
});

describe("nodes", () => {
  test("a warmed node shows its status, health, provider timings and agent", async () => {
    await provider.agents.get(nodeId)!.heartbeat();
    const node = v.parse(NodeView, await (await t.call("GET", `/api/nodes/${nodeId}`)).json());
    expect(node).toMatchObject({
      status: "ready",
      health: "healthy",
      provider: "local",
      ownerKeyId: null,
      agentVersion: "double-1",
    });
    expect(node.providerTimings.map((x) => x.name)).toEqual(["create_call", "server_running", "agent_ready"]);
    expect(node.lastMetrics?.cpuPercent).toBe(12.5);
    const list = v.parse(pageOf(NodeView), await (await t.call("GET", "/api/nodes")).json());
    expect(list.data.map((n) => n.id)).toContain(nodeId);
  });

  test("both node databases download through the edge as real SQLite files, headers passed through", async () => {
    for (const kind of ["events", "metrics"]) {
      const res = await t.call("GET", `/api/nodes/${nodeId}/${kind}/export`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/vnd.sqlite3");
      expect(res.headers.get("content-disposition")).toBe(`attachment; filename="${nodeId}-${kind}.db"`);
      const bytes = new Uint8Array(await res.arrayBuffer());
      expect(Number(res.headers.get("content-length"))).toBe(bytes.byteLength);
      const dir = mkdtempSync(join(tmpdir(), "sam-export-"));
      try {
        writeFileSync(join(dir, "x.db"), bytes);
        const db = new Database(join(dir, "x.db"), { readonly: true });
        const table = kind === "events" ? "events" : "samples";
        expect((db.query(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n).toBe(1);
        db.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  test("events are proxied with the query passed through; metrics come back as a series", async () => {
    const res = await t.call("GET", `/api/nodes/${nodeId}/events?type=agent.start&limit=5`);
    expect(res.status).toBe(200);
    expect((await res.json()).data[0].type).toBe("agent.start");
    expect(provider.agents.get(nodeId)!.eventQueries.at(-1)).toBe("?type=agent.start&limit=5");
    const metrics = v.parse(
      NodeMetricsView,
      await (await t.call("GET", `/api/nodes/${nodeId}/metrics?window=24h`)).json(),
    );
    expect(metrics).toMatchObject({ nodeId, window: "24h" });
    expect(metrics.samples).toHaveLength(1);
    expect((await t.call("GET", `/api/nodes/${nodeId}/metrics?window=1y`)).status).toBe(400);
  });

  test("an unreachable agent is a 502 naming the node's last known state", async () => {
    const other = v.parse(NodeView, await (await t.call("POST", "/api/nodes", { body: {} })).json());
    await until("ready", async () => (await (await t.call("GET", `/api/nodes/${other.id}`)).json()).status === "ready");
    await provider.agents.get(other.id)!.stop();
    const res = await t.call("GET", `/api/nodes/${other.id}/events/export`);
    expect(res.status).toBe(502);
    const body = await res.json();
    expect(body.error.type).toBe("upstream_error");
    expect(body.error.message).toMatch(
      new RegExp(
        `^the agent of node ${other.id} is unreachable \\(.+\\); last known: status ready, last heartbeat \\d+s ago$`,
      ),
    );
  });

  test("DELETE drains and deletes an idle node; the provider's server is gone", async () => {
    const res = await t.call("DELETE", `/api/nodes/${nodeId}`);
    expect(res.status).toBe(202);
    expect(v.parse(NodeView, await res.json()).status).toBe("deleted");
    expect(provider.deleted).toContain(nodeId);
    // The live event log is gone with the agent; its database was archived before the delete.
    const gone = await t.call("GET", `/api/nodes/${nodeId}/events`);
    expect(gone.status).toBe(409);
    const archived = await t.call("GET", `/api/nodes/${nodeId}/events/export`);
    expect(archived.status).toBe(200);
    expect(archived.headers.get("content-disposition")).toEndWith('-archived.db"');
    expect((await t.call("GET", "/api/nodes")).ok).toBe(true);
    const list = v.parse(pageOf(NodeView), await (await t.call("GET", "/api/nodes")).json());
    expect(list.data.map((n) => n.id)).not.toContain(nodeId);
  });
});
