// The edge restarts mid-task: the task continues from the database, and the agent's retried result lands.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { until } from "../shared/testing/until.ts";
import { ProviderDouble } from "./testing/provider-double.ts";
import { startFrontProxy, startTestEdge, type TestEdge } from "./testing/test-edge.ts";

const cleanup: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

describe("edge restart", () => {
  test("a running task survives an edge restart and finishes on the new instance", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "sam-restart-"));
    cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const front = startFrontProxy();
    cleanup.push(() => front.stop());
    const env = { SAM_PUBLIC_URL: front.url };

    const provider = new ProviderDouble({ autoReady: true, keepOnClose: true, double: { mode: "hold" } });
    const first: TestEdge = await startTestEdge({ provider, dataDir, env });
    front.target.url = first.url;
    const key = (await first.createKey()).key;
    const task = await (await first.call("POST", "/api/tasks", {
      token: key,
      body: { prompt: "p", agent: { type: "command", command: "true" } },
    })).json();
    await until(
      "running",
      async () => (await (await first.call("GET", `/api/tasks/${task.id}`)).json()).status === "running",
    );
    const agent = [...provider.agents.values()][0]!;
    cleanup.push(() => agent.stop());
    await first.stop({ keepData: true });

    // While the edge is down the agent's callbacks fail; it keeps its result and retries.
    expect((await agent.finish(task.id, { status: "succeeded", summary: "while down" })).status).toBe(502);

    const second = await startTestEdge({ provider: new ProviderDouble(), dataDir, env });
    cleanup.push(() => second.stop({ keepData: true }));
    front.target.url = second.url;
    expect((await (await second.call("GET", `/api/tasks/${task.id}`, { token: key })).json()).status).toBe("running");
    // Heartbeats and the retried result reach the new instance with the same node token.
    expect((await agent.heartbeat()).cancel).toEqual([]);
    expect((await agent.finish(task.id, { status: "succeeded", summary: "after restart" })).status).toBe(200);
    const done = await (await second.call("GET", `/api/tasks/${task.id}`, { token: key })).json();
    expect(done.status).toBe("succeeded");
    expect(done.result.summary).toBe("after restart");
    // The node is reusable by the new instance: the next task dispatches to the same agent.
    const next = await (await second.call("POST", "/api/tasks", { token: key, body: { prompt: "q" } })).json();
    await until(
      "second task running",
      async () => (await (await second.call("GET", `/api/tasks/${next.id}`)).json()).status === "running",
    );
    expect(agent.dispatches.map((d) => d.taskId)).toEqual([task.id, next.id]);
  }, 15_000);
});
