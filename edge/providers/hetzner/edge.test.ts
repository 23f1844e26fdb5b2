// SAM_PROVIDER=hetzner end to end at the edge: a submitted task makes the edge create a real-shaped server
// (against the Hetzner API fake over HTTP) with SAM's cloud-init, and a node delete
// removes it. The VM itself cannot boot here, so the task stays waiting for its agent.
import { afterAll, describe, expect, test } from "bun:test";
import { parse } from "yaml";
import { startTestEdge, until } from "../../testing/harness.ts";
import { startHetznerFake } from "./fake-api.ts";

const TOKEN = "hcloud-edge-test-token";
const fake = await startHetznerFake({ token: TOKEN, actionPolls: 1, runningPolls: 1 });
const t = await startTestEdge({
  env: {
    HCLOUD_TOKEN: TOKEN,
    SAM_HCLOUD_API_BASE: fake.url,
    SAM_PUBLIC_URL: "https://sam.example.com",
    SAM_AGENT_DOWNLOAD_URL: "https://downloads.example.com/sam-agent-linux-x64",
    SAM_AGENT_SHA256: "c".repeat(64),
    SAM_HCLOUD_REQUEST_TIMEOUT: "2s",
  },
});
afterAll(async () => {
  await t.stop();
  await fake.close();
});

describe("the edge on the hetzner provider", () => {
  test("a task provisions a labelled server with SAM's cloud-init; deleting the node deletes it", async () => {
    expect(t.edge.provider.name).toBe("hetzner");
    const key = await t.createKey("hetzner-user");
    const submit = await t.call("POST", "/api/tasks", { token: key.key, body: { prompt: "hello", agent: { type: "command", command: "true" } } });
    expect(submit.status).toBe(201);
    const task = await submit.json();

    const node = await until("the node has its server", async () => {
      const list = await (await t.call("GET", "/api/nodes")).json();
      const n = list.data.find((x: { providerServerId: string | null }) => x.providerServerId);
      return n?.providerTimings.some((p: { name: string }) => p.name === "server_running") ? n : undefined;
    }, 15_000);
    expect(node.provider).toBe("hetzner");
    expect(node.ipv4).toMatch(/^203\.0\.113\.\d+$/);
    expect(node.providerTimings.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(["create_call", "action_done", "server_running"]));

    const server = fake.servers.get(Number(node.providerServerId))!;
    expect(server.labels).toMatchObject({ "sam-node": "true", "sam-node-id": node.id });
    expect(server.image).toBe("docker-ce");
    expect(server.userData.startsWith("#cloud-config\n")).toBe(true);
    const cloudConfig = parse(server.userData);
    const files = cloudConfig.write_files.map((f: { path: string }) => f.path);
    expect(files).toEqual(expect.arrayContaining(["/etc/sam/tokens", "/etc/sam/agent.env"]));
    expect(server.userData).toContain(`SAM_NODE_ID=${node.id}`);
    expect(server.userData).toContain("SAM_CONTROL_PLANE_URL=https://sam.example.com");

    const view = await (await t.call("GET", `/api/tasks/${task.id}`, { token: key.key })).json();
    expect(["provisioning", "waiting_for_agent"]).toContain(view.status);

    const del = await t.call("DELETE", `/api/nodes/${node.id}`);
    expect(del.status).toBeLessThan(300);
    await until("the server is deleted at Hetzner", () => !fake.servers.has(Number(node.providerServerId)), 15_000);
  }, 30_000);
});
