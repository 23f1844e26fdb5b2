// The Hetzner provider through the real edge under Deno (edge/main.ts, its own tick), against the
// spec-shaped Hetzner fake over HTTP: an orphan with SAM's label is reaped by the tick, a create that fails
// after its 201 leaves no server behind and the task gets a new node, and deleting that node deletes its
// server — nothing is left in the project at the end.
import assert from "node:assert/strict";
import { startHetznerFake } from "../../testing/hetzner-fake.ts";
import { until } from "../../../shared/testing/until.ts";
import { startDenoEdge } from "../../testing/deno-edge.ts";

const ADMIN = "admin-token-for-deno-hetzner-0123";
const TOKEN = "hcloud-deno-token";

Deno.test("under Deno: the tick reaps an orphan, a create that fails after its 201 leaves nothing behind, a node delete deletes its server", async () => {
  const fake = await startHetznerFake({ token: TOKEN, actionPolls: 1, runningPolls: 1 });
  const dataDir = await Deno.makeTempDir();
  const orphan = fake.addServer({
    labels: { "sam-node": "true", "sam-node-id": "n-lost" },
    created: new Date(Date.now() - 3_600_000).toISOString(),
  });
  fake.applyThenFailNextCreate({ brokenBody: true });
  const edge = await startDenoEdge({
    env: {
      SAM_PORT: "0",
      SAM_DATA_DIR: dataDir,
      SAM_ADMIN_TOKEN: ADMIN,
      HCLOUD_TOKEN: TOKEN,
      SAM_HCLOUD_API_BASE: fake.url,
      SAM_PUBLIC_URL: "https://sam.example.com",
      SAM_AGENT_DOWNLOAD_URL: "https://downloads.example.com/sam-agent",
      SAM_AGENT_SHA256: "e".repeat(64),
      SAM_TICK_INTERVAL: "200ms",
      SAM_RETRY_BACKOFF: "100ms",
      SAM_ORPHAN_GRACE: "1m",
    },
    timeoutMs: 20_000,
  });
  try {
    const url = edge.url;
    const api = (method: string, path: string, token = ADMIN, body?: unknown) =>
      fetch(`${url}${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });

    await until("the tick reaped the orphan", async () => !fake.servers.has(orphan.id), 15_000);

    const key = await (await api("POST", "/api/keys", ADMIN, { name: "deno" })).json();
    const submitted = await api("POST", "/api/tasks", key.key, {
      prompt: "hello",
      agent: { type: "command", command: "true" },
    });
    assert.equal(submitted.status, 201);
    await submitted.body?.cancel();

    type NodeView = { id: string; status: string; providerServerId: string | null };
    const nodes = async () => ((await (await api("GET", "/api/nodes")).json()).data as NodeView[]);
    const booting = await until(
      "a node whose server came up",
      async () => (await nodes()).find((n) => n.status === "booting"),
      20_000,
    );
    const failed = (await nodes()).find((n) => n.status === "failed");
    assert.ok(failed?.providerServerId, "the failed create's server id was recorded on its node");
    assert.equal(fake.servers.has(Number(failed.providerServerId)), false);
    assert.deepEqual([...fake.servers.keys()], [Number(booting.providerServerId)]);
    assert.equal(fake.requests.filter((r) => r.method === "POST").length, 2);

    const del = await api("DELETE", `/api/nodes/${booting.id}`);
    assert.ok(del.status < 300);
    await del.body?.cancel();
    await until("nothing is left in the project", async () => fake.servers.size === 0, 15_000);
    assert.match(edge.output(), new RegExp(`orphan reaper: deleted server ${orphan.id} \\(node n-lost is unknown\\)`));
    const config = await (await api("GET", "/api/config")).json();
    assert.equal(config.orphanReaper.mode, "on");
    assert.ok(config.orphanReaper.deleted >= 1, "the reaper counted what it deleted");
  } finally {
    const status = await edge.stop();
    await fake.close();
    await Deno.remove(dataDir, { recursive: true });
    assert.equal(status.code, 0);
  }
});
