// The runner's timers and faults, against agent doubles: deadlines from the table, retries, idempotent callbacks.
import { afterEach, describe, expect, test } from "bun:test";
import * as v from "valibot";
import { TaskView } from "../../shared/wire/api.ts";
import { until } from "../../shared/testing/until.ts";
import { ProviderDouble } from "../testing/provider-double.ts";
import { startTestEdge, type TestEdge } from "../testing/test-edge.ts";

let edges: TestEdge[] = [];
afterEach(async () => {
  for (const e of edges) await e.stop();
  edges = [];
});

async function edgeWith(provider: ProviderDouble, env: Record<string, string> = {}) {
  const t = await startTestEdge({ provider, env });
  edges.push(t);
  return { t, key: (await t.createKey()).key };
}

async function view(t: TestEdge, id: string) {
  return v.parse(TaskView, await (await t.call("GET", `/api/tasks/${id}`)).json());
}

describe("runner", () => {
  test("the agent never calls back: the task fails exactly at its boot deadline, naming the timer and the phase", async () => {
    const provider = new ProviderDouble({ autoReady: false });
    const { t, key } = await edgeWith(provider);
    const task = await (await t.call("POST", "/api/tasks", {
      token: key,
      body: { prompt: "p", agent: { type: "command", command: "true" } },
    })).json();
    await t.edge.runner.idle();
    const waiting = await view(t, task.id);
    expect(waiting.status).toBe("waiting_for_agent");
    const node = await (await t.call("GET", `/api/nodes/${waiting.nodeId}`)).json();
    const deadline = node.createdAt + 15 * 60_000;

    await t.edge.runner.tick(deadline - 1);
    expect((await view(t, task.id)).status).toBe("waiting_for_agent");
    await t.edge.runner.tick(deadline);
    const failed = await view(t, task.id);
    expect(failed.status).toBe("failed");
    expect(failed.error).toBe(
      `agent not ready after 15m (boot budget); node ${node.id} last phase: booting (no boot phase reported)`,
    );
    const nodeAfter = await (await t.call("GET", `/api/nodes/${node.id}?`)).json();
    expect(nodeAfter.status).toMatch(/failed|deleted/);
    expect(nodeAfter.statusReason).toContain("agent not ready after 15m (boot budget)");
  });

  test(
    "shortened timers, real ticks: the runner fails the stuck task after its boot budget, never the sweep first",
    async () => {
      const provider = new ProviderDouble({ autoReady: false });
      const env = {
        SAM_AGENT_READY_TIMEOUT: "600ms",
        SAM_HEARTBEAT_INTERVAL: "100ms",
        SAM_TICK_INTERVAL: "50ms",
        SAM_TIMEOUT_BUFFER: "300ms",
        SAM_DISPATCH_TIMEOUT: "400ms",
        SAM_RETRY_BACKOFF: "50ms",
        SAM_NODE_WARM: "1s",
      };
      const { t, key } = await edgeWith(provider, env);
      const interval = setInterval(() => void t.edge.tick(), 50);
      try {
        const submitted = Date.now();
        const task = await (await t.call("POST", "/api/tasks", {
          token: key,
          body: { prompt: "p", agent: { type: "command", command: "true" } },
        })).json();
        const failed = await until("failed", async () => {
          const x = await view(t, task.id);
          return x.status === "failed" ? x : undefined;
        }, 5_000);
        const failedAt = failed.transitions.at(-1)!.at;
        expect(failedAt - submitted).toBeGreaterThanOrEqual(600);
        expect(failed.error).toMatch(/^agent not ready after 600ms \(boot budget\); node n-\w+ last phase: /);
        expect(failed.error).not.toContain("sweep");
      } finally {
        clearInterval(interval);
      }
    },
    10_000,
  );

  test("duplicate callbacks are idempotent: the same log batch twice, the result twice, ready twice", async () => {
    const provider = new ProviderDouble({ autoReady: true, double: { mode: "hold" } });
    const { t, key } = await edgeWith(provider);
    const task = await (await t.call("POST", "/api/tasks", {
      token: key,
      body: { prompt: "p", agent: { type: "command", command: "true" } },
    })).json();
    await until("running", async () => (await view(t, task.id)).status === "running");
    const agent = [...provider.agents.values()][0]!;
    const batch = [{ seq: 0, at: 1, stream: "stdout" as const, message: "one" }, {
      seq: 1,
      at: 2,
      stream: "stdout" as const,
      message: "two",
    }];
    const first = await (await agent.logs(task.id, batch)).json();
    const second = await (await agent.logs(task.id, batch)).json();
    expect(first).toEqual({ accepted: 2, lastSeq: 1 });
    expect(second).toEqual({ accepted: 0, lastSeq: 1 });
    // A retry from the first unacknowledged seq, overlapping what the edge has.
    expect(await (await agent.logs(task.id, [batch[1]!, { seq: 2, at: 3, stream: "stderr", message: "three" }])).json())
      .toEqual({ accepted: 1, lastSeq: 2 });
    expect((await agent.ready()).status).toBe(200);
    expect((await agent.finish(task.id, { status: "succeeded", summary: "done" })).status).toBe(200);
    expect((await agent.finish(task.id, { status: "failed", error: "late duplicate" })).status).toBe(200);
    const done = await view(t, task.id);
    expect(done.status).toBe("succeeded");
    expect(done.result?.summary).toBe("done");
    const events = (await (await t.call("GET", `/api/tasks/${task.id}/events`)).json()).data;
    expect(events.filter((e: { type: string }) => e.type === "log").map((e: { message: string }) => e.message)).toEqual(
      ["one", "two", "three"],
    );
    expect(events.filter((e: { status?: string }) => e.status === "succeeded")).toHaveLength(1);
    expect(agent.dispatches).toHaveLength(1);
  });

  test("a transient dispatch failure is retried by the tick with backoff, then the dispatch deadline fails it", async () => {
    const provider = new ProviderDouble({ autoReady: true, double: { dispatchStatus: 503 } });
    const { t, key } = await edgeWith(provider);
    const task = await (await t.call("POST", "/api/tasks", {
      token: key,
      body: { prompt: "p", agent: { type: "command", command: "true" } },
    })).json();
    await until("dispatched", async () => (await view(t, task.id)).status === "dispatched");
    await t.edge.runner.idle();
    const agent = [...provider.agents.values()][0]!;
    expect(agent.dispatches).toHaveLength(1);
    const enteredAt = (await view(t, task.id)).transitions.find((x) => x.status === "dispatched")!.at;
    await t.edge.runner.tick(enteredAt + 1_000); // before the backoff (2s): no retry
    expect(agent.dispatches).toHaveLength(1);
    await t.edge.runner.tick(enteredAt + 12_500); // past the lease and backoff: one retry
    expect(agent.dispatches).toHaveLength(2);
    await t.edge.runner.tick(enteredAt + 30_000);
    const failed = await view(t, task.id);
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatch(/^agent did not accept the task within 30s \(dispatch timeout\); node n-\w+ /);
  });

  test("an agent that refuses a task (4xx) fails it with the agent's message", async () => {
    const provider = new ProviderDouble({ autoReady: true, double: { dispatchStatus: 400 } });
    const { t, key } = await edgeWith(provider);
    const task = await (await t.call("POST", "/api/tasks", { token: key, body: { prompt: "p" } })).json();
    const failed = await until("failed", async () => {
      const x = await view(t, task.id);
      return x.status === "failed" ? x : undefined;
    });
    expect(failed.error).toMatch(/^node n-\w+ refused the task: HTTP 400 injected$/);
  });

  test("a 202 whose body is not the task's run state is not taken as accepted: the dispatch is retried", async () => {
    const provider = new ProviderDouble({ autoReady: true, double: { dispatchStatus: 202 } });
    const { t, key } = await edgeWith(provider);
    const task = await (await t.call("POST", "/api/tasks", {
      token: key,
      body: { prompt: "p", agent: { type: "command", command: "true" } },
    })).json();
    await until("dispatched", async () => (await view(t, task.id)).status === "dispatched");
    await t.edge.runner.idle();
    const agent = [...provider.agents.values()][0]!;
    expect(agent.dispatches).toHaveLength(1);
    expect((await view(t, task.id)).status).toBe("dispatched");
    const enteredAt = (await view(t, task.id)).transitions.find((x) => x.status === "dispatched")!.at;
    await t.edge.runner.tick(enteredAt + 2_500); // past the first backoff: dispatched again
    expect(agent.dispatches).toHaveLength(2);
    expect((await view(t, task.id)).status).toBe("dispatched");
  });

  test("a provider failure puts the task back in the queue; the queue wait fails it eventually", async () => {
    const provider = new ProviderDouble({ failCreate: true });
    const { t, key } = await edgeWith(provider);
    const task = await (await t.call("POST", "/api/tasks", { token: key, body: { prompt: "p" } })).json();
    await t.edge.runner.idle();
    const requeued = await view(t, task.id);
    expect(requeued.status).toBe("queued");
    expect(requeued.transitions.map((x) => x.reason).join("\n")).toContain(
      "provider create failed: injected provider failure",
    );
    await t.edge.runner.tick(requeued.createdAt + 15 * 60_000);
    await t.edge.runner.idle();
    const failed = await view(t, task.id);
    expect(failed.status).toBe("failed");
    expect(failed.error).toBe("no node available after 15m (queue wait)");
  });

  test("idle nodes are reaped after their warm time; busy ones are not", async () => {
    const provider = new ProviderDouble({ autoReady: true });
    const { t, key } = await edgeWith(provider);
    const task = await (await t.call("POST", "/api/tasks", {
      token: key,
      body: { prompt: "p", agent: { type: "command", command: "true" } },
    })).json();
    const done = await until("done", async () => {
      const x = await view(t, task.id);
      return x.status === "succeeded" ? x : undefined;
    });
    await t.edge.runner.idle();
    const endedAt = done.transitions.at(-1)!.at;
    await t.edge.runner.tick(endedAt + 9 * 60_000);
    expect((await (await t.call("GET", `/api/nodes/${done.nodeId}`)).json()).status).toBe("ready");
    await t.edge.runner.tick(endedAt + 10 * 60_000 + 1_000);
    const node = await (await t.call("GET", `/api/nodes/${done.nodeId}`)).json();
    expect(node.status).toBe("deleted");
    expect(node.statusReason).toBe("idle for 10m (warm time)");
    expect(provider.deleted).toContain(done.nodeId!);
  });

  test("a node whose server vanished (no heartbeats, provider has no server) fails, and so do its tasks", async () => {
    const provider = new ProviderDouble({ autoReady: true, double: { mode: "hold" } });
    const { t, key } = await edgeWith(provider);
    const task = await (await t.call("POST", "/api/tasks", { token: key, body: { prompt: "p" } })).json();
    const running = await until("running", async () => {
      const x = await view(t, task.id);
      return x.status === "running" ? x : undefined;
    });
    const node = await (await t.call("GET", `/api/nodes/${running.nodeId}`)).json();
    await t.edge.runner.tick(node.lastHeartbeatAt + 3 * 60_000 + 1); // unhealthy, but the server still exists
    expect((await view(t, task.id)).status).toBe("running");
    await provider.delete((await provider.list())[0]!.id);
    await t.edge.runner.tick(node.lastHeartbeatAt + 3 * 60_000 + 1);
    const failed = await view(t, task.id);
    expect(failed.status).toBe("failed");
    expect(failed.error).toBe(
      `node ${node.id} is gone (no heartbeat for 3m and the provider no longer has its server)`,
    );
  });
});
