// SAM_PROVIDER=hetzner end to end at the edge, against the Hetzner API fake over HTTP (shaped like Hetzner's
// description of 2026-07): a submitted task makes the edge create a server with SAM's cloud-init and a node
// delete removes it; a create that fails after its 201 leaves no server behind, and is retried only once
// that server is gone; the tick's orphan reaper deletes SAM-labelled servers of no live node (not in dry
// run). The VM itself cannot boot here, so tasks stay waiting for their agent.
import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { parse } from "yaml";
import { until } from "../../../shared/testing/until.ts";
import { startTestEdge, type TestEdge } from "../../testing/test-edge.ts";
import { startHetznerFake } from "../../testing/hetzner-fake.ts";

const TOKEN = "hcloud-edge-test-token";
const fake = await startHetznerFake({ token: TOKEN, actionPolls: 1, runningPolls: 1 });
afterAll(() => fake.close());

const ENV = {
  HCLOUD_TOKEN: TOKEN,
  SAM_HCLOUD_API_BASE: fake.url,
  SAM_PUBLIC_URL: "https://sam.example.com",
  SAM_AGENT_DOWNLOAD_URL: "https://downloads.example.com/sam-agent-linux-x64",
  SAM_AGENT_SHA256: "c".repeat(64),
  SAM_HCLOUD_REQUEST_TIMEOUT: "2s",
  SAM_RETRY_BACKOFF: "100ms",
};

let t: TestEdge;
const edges: TestEdge[] = [];
async function edge(env: Record<string, string> = {}): Promise<TestEdge> {
  const e = await startTestEdge({ env: { ...ENV, ...env } });
  edges.push(e);
  return e;
}
beforeEach(() => fake.reset());
afterEach(async () => {
  for (const e of edges.splice(0)) await e.stop();
});

const requests = (method: string, path: RegExp) =>
  fake.requests.filter((r) => r.method === method && path.test(r.path));
const submit = async (e: TestEdge) => {
  const key = await e.createKey(`user-${Math.random().toString(36).slice(2, 8)}`);
  const res = await e.call("POST", "/api/tasks", {
    token: key.key,
    body: { prompt: "hello", agent: { type: "command", command: "true" } },
  });
  expect(res.status).toBe(201);
  return { key, task: await res.json() };
};
const nodes = async (e: TestEdge) =>
  (await (await e.call("GET", "/api/nodes")).json()).data as {
    id: string;
    status: string;
    providerServerId: string | null;
    providerTimings: { name: string }[];
    ipv4: string | null;
    provider: string;
  }[];

describe("the edge on the hetzner provider", () => {
  test("a task provisions a labelled server with SAM's cloud-init; deleting the node deletes it", async () => {
    t = await edge();
    expect(t.edge.provider.name).toBe("hetzner");
    const { key, task } = await submit(t);

    const node = await until(
      "the node has its server",
      async () => (await nodes(t)).find((n) => n.providerTimings.some((p) => p.name === "server_running")),
      15_000,
    );
    expect(node.provider).toBe("hetzner");
    expect(node.ipv4).toMatch(/^203\.0\.113\.\d+$/);
    expect(node.providerTimings.map((p) => p.name)).toEqual(
      expect.arrayContaining(["create_call", "action_done", "server_running"]),
    );

    const server = fake.servers.get(Number(node.providerServerId))!;
    expect(server.labels).toMatchObject({ "sam-node": "true", "sam-node-id": node.id });
    expect(server.image).toBe("docker-ce");
    expect(server.serverType).toBe("cx23");
    const files = parse(server.userData).write_files.map((f: { path: string }) => f.path);
    expect(files).toEqual(expect.arrayContaining(["/etc/sam/tokens", "/etc/sam/agent.env"]));
    expect(server.userData).toContain(`SAM_NODE_ID=${node.id}`);
    expect(server.userData).toContain("SAM_CONTROL_PLANE_URL=https://sam.example.com");

    const view = await (await t.call("GET", `/api/tasks/${task.id}`, { token: key.key })).json();
    expect(["provisioning", "waiting_for_agent"]).toContain(view.status);

    const del = await t.call("DELETE", `/api/nodes/${node.id}`);
    expect(del.status).toBeLessThan(300);
    await until("the server is deleted at Hetzner", () => !fake.servers.has(Number(node.providerServerId)), 15_000);
  }, 30_000);

  test(
    "a create whose 201 cannot be parsed records the server on the node, deletes it, and the task gets a new node",
    async () => {
      t = await edge();
      fake.applyThenFailNextCreate({ brokenBody: true });
      await submit(t);
      const failed = await until(
        "the first node failed",
        async () => (await nodes(t)).find((n) => n.status === "failed"),
        15_000,
      );
      const firstId = Number(failed.providerServerId);
      expect(firstId).toBeGreaterThan(0);
      expect(fake.servers.has(firstId)).toBe(false);
      expect(
        requests("DELETE", /^\/servers\/\d+$/).map((r) => r.path),
      ).toEqual([`/servers/${firstId}`]);

      const second = await until("the task got a second node with a server", async () => {
        await t.edge.tick();
        return (await nodes(t)).find((n) => n.status === "booting" && n.providerServerId);
      }, 15_000);
      expect([...fake.servers.keys()]).toEqual([Number(second.providerServerId)]);
      expect(requests("POST", /^\/servers$/)).toHaveLength(2);
    },
    30_000,
  );

  test(
    "a failed create whose server cannot be deleted is not retried until the reaper has deleted that server",
    async () => {
      t = await edge();
      fake.failNextCreateAction("resource_unavailable", "no capacity in fsn1");
      fake.inject("DELETE", /^\/servers\/\d+$/, { status: 503 }, 6);
      await submit(t);
      const failed = await until(
        "the node failed",
        async () => (await nodes(t)).find((n) => n.status === "failed"),
        15_000,
      );
      const leftover = Number(failed.providerServerId);
      expect(fake.servers.has(leftover)).toBe(true);
      await t.edge.runner.idle();
      expect(requests("POST", /^\/servers$/)).toHaveLength(1);

      await until("a second create", async () => {
        await t.edge.tick();
        await t.edge.runner.idle();
        return requests("POST", /^\/servers$/).length === 2;
      }, 15_000);
      expect(fake.servers.has(leftover)).toBe(false);
      const order = fake.requests.map((r) => `${r.method} ${r.path} ${r.status}`);
      const deletedAt = order.indexOf(`DELETE /servers/${leftover} 200`);
      const secondPost = order.findLastIndex((o) => o.startsWith("POST /servers "));
      expect(deletedAt).toBeGreaterThan(-1);
      expect(deletedAt).toBeLessThan(secondPost);
      expect(t.edge.runner.orphans.deleted).toBe(1);
    },
    30_000,
  );

  test("the tick reaps servers with SAM's label of no live node once past the grace period, and nothing else", async () => {
    const old = new Date(Date.now() - 3_600_000).toISOString();
    const orphan = fake.addServer({ labels: { "sam-node": "true", "sam-node-id": "n-gone" }, created: old });
    const young = fake.addServer({ labels: { "sam-node": "true", "sam-node-id": "n-young" } });
    const foreign = fake.addServer({ labels: { team: "web" }, created: old });
    t = await edge({ SAM_ORPHAN_GRACE: "5m" });
    await t.edge.tick();
    await t.edge.runner.idle();
    expect(fake.servers.has(orphan.id)).toBe(false);
    expect(fake.servers.has(young.id)).toBe(true);
    expect(fake.servers.has(foreign.id)).toBe(true);
    expect(t.edge.runner.orphans).toMatchObject({ passes: 1, deleted: 1, wouldDelete: 0 });
    expect(requests("GET", /^\/servers$/).every((r) => r.query.label_selector === "sam-node")).toBe(true);
  });

  test("dry run only counts and logs what it would delete", async () => {
    const orphan = fake.addServer({
      labels: { "sam-node": "true", "sam-node-id": "n-gone" },
      created: new Date(Date.now() - 3_600_000).toISOString(),
    });
    t = await edge({ SAM_ORPHAN_REAPER: "dry-run" });
    await t.edge.tick();
    await t.edge.runner.idle();
    expect(fake.servers.has(orphan.id)).toBe(true);
    expect(requests("DELETE", /./)).toHaveLength(0);
    expect(t.edge.runner.orphans).toMatchObject({ passes: 1, deleted: 0, wouldDelete: 1 });
  });
});
