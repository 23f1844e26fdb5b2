// A node's boot seen live, through the real edge under Deno: the Hetzner provider (against its API fake)
// renders the user-data, the test plays the VM's boot script (progress markers with the node token it finds in
// that user-data), then the agent's ready — degraded, or from a later boot — and a boot that never finishes.
import assert from "node:assert/strict";
import { parse } from "yaml";
import { startHetznerFake } from "../testing/hetzner-fake.ts";
import { until } from "../../shared/testing/until.ts";
import { startDenoEdge } from "../testing/deno-edge.ts";
import { readyReport } from "../../shared/testing/agent-ready.ts";
import { freePort } from "../../shared/testing/free-port.ts";

const ADMIN = "admin-token-for-boot-progress-0123";

Deno.test("boot progress: live phases, a degraded ready, the first boot kept after a reboot, a timeout naming the stuck phase", async () => {
  const fake = await startHetznerFake({ token: "hcloud-test-token", actionPolls: 0, runningPolls: 0 });
  const dataDir = await Deno.makeTempDir();
  // The hetzner provider needs the public URL up front (the VMs call it): a free port, known before start.
  const port = await freePort();
  const edge = await startDenoEdge({
    env: {
      SAM_PORT: String(port),
      SAM_PUBLIC_URL: `http://127.0.0.1:${port}`,
      SAM_DATA_DIR: dataDir,
      SAM_ADMIN_TOKEN: ADMIN,
      HCLOUD_TOKEN: "hcloud-test-token",
      SAM_HCLOUD_API_BASE: fake.url,
      SAM_AGENT_DOWNLOAD_URL: "http://downloads.invalid/sam-agent",
      SAM_AGENT_SHA256: "a".repeat(64),
      SAM_AGENT_READY_TIMEOUT: "6s",
      SAM_HEARTBEAT_INTERVAL: "1s",
      SAM_TICK_INTERVAL: "1s",
      SAM_TIMEOUT_BUFFER: "3s",
    },
  });
  try {
    const url = edge.url;
    const admin = (path: string, init: RequestInit = {}) =>
      fetch(`${url}${path}`, { ...init, headers: { Authorization: `Bearer ${ADMIN}`, ...init.headers } });

    /** Provision a node and read what its VM would get: its id and node token, from the rendered user-data. */
    async function boot(): Promise<{ nodeId: string; post: (path: string, body: unknown) => Promise<Response> }> {
      const res = await admin("/api/nodes", { method: "POST" });
      assert.equal(res.status, 201);
      const nodeId = (await res.json()).id as string;
      // By label, not by position: a failed node's server is deleted from the fake while the next one is made.
      const server = await until(
        "the server create",
        async () => [...fake.servers.values()].find((s) => s.labels["sam-node-id"] === nodeId),
        20_000,
      );
      const files = (parse(server.userData) as { write_files: { path: string; content: string }[] }).write_files;
      const token = /SAM_NODE_TOKEN=(\S+)/.exec(files.find((f) => f.path === "/etc/sam/tokens")!.content)![1]!;
      assert.match(server.userData, /sam_progress START docker-start/);
      const post = (path: string, body: unknown) =>
        fetch(`${url}/api/agent/${path}`, {
          method: "POST",
          headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
          body: JSON.stringify(body),
        });
      return { nodeId, post };
    }
    const view = async (id: string) => (await (await admin(`/api/nodes/${id}`)).json());
    const t0 = Date.now();

    // 1. Live: the phases appear as the markers arrive; a bad marker is a 400, another node's a 403.
    const a = await boot();
    assert.equal(
      (await a.post("boot-progress", { nodeId: a.nodeId, kind: "START", phase: "docker-start", at: t0 })).status,
      200,
    );
    assert.equal(
      (await a.post("boot-progress", { nodeId: a.nodeId, kind: "END", phase: "docker-start", at: t0 + 800 })).status,
      200,
    );
    assert.equal(
      (await a.post("boot-progress", { nodeId: a.nodeId, kind: "START", phase: "image-pull", at: t0 + 900 })).status,
      200,
    );
    // The script retries a report it could not confirm: a marker that arrives twice counts once.
    assert.equal(
      (await a.post("boot-progress", { nodeId: a.nodeId, kind: "START", phase: "image-pull", at: t0 + 900 })).status,
      200,
    );
    let live = (await view(a.nodeId)).bootTimeline;
    assert.equal(live.source, "live");
    assert.deepEqual(live.phases.map((p: { name: string; status: string }) => [p.name, p.status]), [[
      "docker-start",
      "ok",
    ], ["image-pull", "unterminated"]]);
    const bad = await a.post("boot-progress", { nodeId: a.nodeId, kind: "START", phase: "x'; rm -rf /", at: t0 });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.type, "invalid_request_error");
    assert.equal(
      (await a.post("boot-progress", { nodeId: "n-other", kind: "START", phase: "tls", at: t0 })).status,
      403,
    );
    const anonymous = await fetch(`${url}/api/agent/boot-progress`, { method: "POST", body: "{}" });
    assert.equal(anonymous.status, 401);

    // 2. The agent reports (its journal timeline is the record); a live END completes the pull it saw running.
    const ready = (phases: unknown[], bootId: string, machineBootId: string, extra: Record<string, unknown> = {}) => ({
      ...readyReport(a.nodeId),
      bootTimeline: {
        source: "journald",
        kernelUptimeMsAtAgentStart: 9000,
        agentStartedAt: t0 + 2000,
        bootId,
        machineBootId,
        phases,
      },
      ...extra,
    });
    const journal = [
      { name: "docker-start", startedAt: t0, endedAt: t0 + 800, durationMs: 800, status: "ok" },
      { name: "image-pull", startedAt: t0 + 900, endedAt: null, durationMs: null, status: "unterminated" },
    ];
    assert.equal((await a.post("ready", ready(journal, "b1", "b1"))).status, 200);
    assert.equal(
      (await a.post("boot-progress", { nodeId: a.nodeId, kind: "END", phase: "image-pull", at: t0 + 5000 })).status,
      200,
    );
    // A phase the script began after the agent read its journal (the waits at its end) joins the record.
    for (const [kind, at] of [["START", t0 + 5100], ["END", t0 + 5300]] as const) {
      assert.equal(
        (await a.post("boot-progress", { nodeId: a.nodeId, kind, phase: "devcontainer-cli-wait", at })).status,
        200,
      );
    }
    let record = (await view(a.nodeId)).bootTimeline;
    assert.equal(record.source, "journald");
    assert.deepEqual(record.phases.map((p: { name: string; durationMs: number }) => [p.name, p.durationMs]), [
      ["docker-start", 800],
      ["image-pull", 4100],
      ["devcontainer-cli-wait", 200],
    ]);

    // 3. A reboot: the agent of the second boot reports no phases; the first boot's timeline stays, the reboot shows.
    assert.equal((await a.post("ready", ready([], "b2", "b2"))).status, 200);
    assert.equal((await a.post("ready", ready(journal, "b1", "b2"))).status, 200);
    const rebooted = await view(a.nodeId);
    assert.deepEqual(rebooted.bootTimeline.phases.map((p: { name: string }) => p.name), [
      "docker-start",
      "image-pull",
      "devcontainer-cli-wait",
    ]);
    assert.equal(rebooted.bootTimeline.bootId, "b1");
    assert.ok(rebooted.providerTimings.some((t: { name: string }) => t.name === "machine_reboot"));

    // 4. Degraded: its tls phase failed; it reports ready with the reason and the node fails with it, no work.
    const b = await boot();
    await b.post("boot-progress", { nodeId: b.nodeId, kind: "FAILED", phase: "tls", at: Date.now() });
    const degraded = await b.post("ready", {
      ...ready([{ name: "tls", startedAt: t0, endedAt: t0, durationMs: 0, status: "failed" }], "c1", "c1"),
      nodeId: b.nodeId,
      degraded: "no TLS certificate",
    });
    assert.equal(degraded.status, 200);
    const failed = await until("the degraded node to fail", async () => {
      const v = await view(b.nodeId);
      return v.status === "failed" || v.status === "deleted" ? v : undefined;
    }, 20_000);
    assert.match(failed.statusReason, /^agent degraded: no TLS certificate/);
    assert.equal(failed.bootTimeline.phases[0].status, "failed");

    // 5. A boot that never reaches the agent: the timeout names the phase it is stuck in, and for how long.
    const c = await boot();
    await c.post("boot-progress", { nodeId: c.nodeId, kind: "START", phase: "agent-download", at: Date.now() });
    const timedOut = await until("the boot timeout", async () => {
      const v = await view(c.nodeId);
      return v.status === "failed" || v.status === "deleted" ? v : undefined;
    }, 30_000);
    assert.match(
      timedOut.statusReason,
      /^agent not ready after 6s \(boot budget\); stuck in phase agent-download for \d+s$/,
    );
  } finally {
    await edge.stop();
    await fake.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
