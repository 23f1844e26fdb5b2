// The local provider for real: agent processes (the agent double, run by bun as the agent binary would be).
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { until } from "../../../shared/testing/until.ts";
import { startTestEdge, type TestEdge } from "../../testing/test-edge.ts";
import { LocalProvider } from "./local.ts";
import { processRunning } from "../../../shared/process.ts";

const agentCommand = `${process.execPath} ${join(import.meta.dir, "..", "..", "testing", "agent-double-main.ts")}`;
const edges: TestEdge[] = [];
afterAll(async () => {
  for (const e of edges) await e.stop();
});

describe("local provider", () => {
  test("a task reaches a local agent process; delete stops it; close stops the rest", async () => {
    // The operator's sandbox settings reach the agents; the edge's own SAM_TASK_RUN_TIMEOUT does not.
    process.env.SAM_TASK_MAX_PROCESSES = "77";
    process.env.SAM_TASK_RUN_TIMEOUT = "42m";
    const t = await startTestEdge({
      env: { SAM_AGENT_BINARY: agentCommand, SAM_HEARTBEAT_INTERVAL: "1s", SAM_AGENT_READY_TIMEOUT: "1m" },
    });
    edges.push(t);
    const key = (await t.createKey()).key;
    const task = await (await t.call("POST", "/api/tasks", {
      token: key,
      body: { prompt: "p", agent: { type: "command", command: "echo from a local node" } },
    })).json();
    const done = await until("succeeded", async () => {
      const x = await (await t.call("GET", `/api/tasks/${task.id}`)).json();
      return x.status === "succeeded" ? x : undefined;
    }, 15_000);
    const dir = join(t.dataDir, "nodes", done.nodeId);
    expect(statSync(join(dir, "tokens")).mode & 0o777).toBe(0o600);
    const pid = Number(readFileSync(join(dir, "agent.pid"), "utf8"));
    expect(processRunning(pid)).toBe(true);
    // The secrets are in the file, not in the agent's environment.
    const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    expect(environ.join("\n")).not.toContain("samnode_");
    expect(environ).toContain("SAM_TASK_MAX_PROCESSES=77");
    expect(environ.some((e) => e.startsWith("SAM_TASK_RUN_TIMEOUT="))).toBe(false);
    delete process.env.SAM_TASK_MAX_PROCESSES;
    delete process.env.SAM_TASK_RUN_TIMEOUT;
    const events = (await (await t.call("GET", `/api/tasks/${task.id}/events`)).json()).data;
    expect(events.some((e: { message: string }) => e.message === "from a local node")).toBe(true);

    const res = await t.call("DELETE", `/api/nodes/${done.nodeId}`);
    expect((await res.json()).status).toBe("deleted");
    expect(processRunning(pid)).toBe(false);
    expect(existsSync(join(dir, "tokens"))).toBe(false);

    const warm = await (await t.call("POST", "/api/nodes", { body: {} })).json();
    await until(
      "warm node ready",
      async () => (await (await t.call("GET", `/api/nodes/${warm.id}`)).json()).status === "ready",
      15_000,
    );
    const warmPid = Number(readFileSync(join(t.dataDir, "nodes", warm.id, "agent.pid"), "utf8"));
    await t.edge.provider.close(); // what edge shutdown does
    expect(processRunning(warmPid)).toBe(false);
  }, 30_000);

  test(
    "after an edge crash, a new provider re-adopts the live agents from their PID files and can stop them",
    async () => {
      const t = await startTestEdge({ env: { SAM_AGENT_BINARY: agentCommand, SAM_HEARTBEAT_INTERVAL: "1s" } });
      edges.push(t);
      const node = await (await t.call("POST", "/api/nodes", { body: {} })).json();
      await until(
        "ready",
        async () => (await (await t.call("GET", `/api/nodes/${node.id}`)).json()).status === "ready",
        15_000,
      );
      const pid = Number(readFileSync(join(t.dataDir, "nodes", node.id, "agent.pid"), "utf8"));
      // A crashed edge never ran close(); a new one starts on the same data dir.
      const adopted = new LocalProvider({ dataDir: t.dataDir, command: [], heartbeatIntervalMs: 1000 });
      const servers = await adopted.list();
      expect(servers.map((s) => [s.id, s.nodeId])).toEqual([[`local-${pid}`, node.id]]);
      await adopted.close();
      expect(processRunning(pid)).toBe(false);
    },
    30_000,
  );
});
