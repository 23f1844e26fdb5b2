// Diagnostics that outlive the node: the drain-and-delete copies the agent's databases into the edge first,
// and the dead node's export routes serve those copies once the agent is gone.
import { afterAll, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { until } from "../../shared/testing/until.ts";
import { ProviderDouble } from "../testing/provider-double.ts";
import { startTestEdge } from "../testing/test-edge.ts";

const dir = mkdtempSync(join(tmpdir(), "sam-archive-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("a deleted node's events and metrics databases still download, valid, after its agent is gone", async () => {
  const provider = new ProviderDouble({ autoReady: true });
  const t = await startTestEdge({ provider });
  try {
    const nodeId = (await (await t.call("POST", "/api/nodes", { body: {} })).json()).id as string;
    await until("ready", async () => (await (await t.call("GET", `/api/nodes/${nodeId}`)).json()).status === "ready");
    expect((await t.call("DELETE", `/api/nodes/${nodeId}`)).status).toBe(202);
    await until(
      "deleted",
      async () => (await (await t.call("GET", `/api/nodes/${nodeId}`)).json()).status === "deleted",
    );
    expect(provider.deleted).toContain(nodeId); // the agent double is stopped: nothing to proxy to any more
    for (const [kind, table] of [["events", "events"], ["metrics", "samples"]] as const) {
      const res = await t.call("GET", `/api/nodes/${nodeId}/${kind}/export`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-disposition")).toMatch(
        new RegExp(`^attachment; filename="${kind}-${nodeId}-\\d{8}T\\d{6}Z-archived\\.db"$`),
      );
      const file = join(dir, `${kind}.db`);
      writeFileSync(file, new Uint8Array(await res.arrayBuffer()));
      const db = new Database(file, { readonly: true });
      expect(db.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
      expect((db.query(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n).toBe(1);
      db.close();
    }
  } finally {
    await t.stop();
  }
});

test("a node deleted before any agent reported has nothing archived: the export says the agent is gone", async () => {
  const provider = new ProviderDouble({ autoReady: false });
  const t = await startTestEdge({ provider });
  try {
    const nodeId = (await (await t.call("POST", "/api/nodes", { body: {} })).json()).id as string;
    await t.call("DELETE", `/api/nodes/${nodeId}`);
    await until(
      "deleted",
      async () => (await (await t.call("GET", `/api/nodes/${nodeId}`)).json()).status === "deleted",
    );
    const res = await t.call("GET", `/api/nodes/${nodeId}/events/export`);
    expect(res.status).toBe(409);
    expect((await res.json()).error.code).toBe("node_gone");
  } finally {
    await t.stop();
  }
});
