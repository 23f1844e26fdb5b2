import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as v from "valibot";
import { pageOf, TaskEventView, TaskView } from "../../shared/wire/api.ts";
import { until } from "../../shared/testing/until.ts";
import { ProviderDouble } from "../testing/provider-double.ts";
import { startTestEdge, type TestEdge } from "../testing/test-edge.ts";

let t: TestEdge;
let provider: ProviderDouble;
let alice: { id: string; key: string };
let bob: { id: string; key: string };

beforeAll(async () => {
  provider = new ProviderDouble({ autoReady: true });
  t = await startTestEdge({ provider });
  alice = await t.createKey("alice");
  bob = await t.createKey("bob");
});
afterAll(async () => {
  await t.stop();
});

async function submit(key: string, body: unknown, headers: Record<string, string> = {}) {
  return t.call("POST", "/api/tasks", { token: key, body, headers });
}

async function waitForStatus(id: string, status: string, key = alice.key) {
  return until(`task ${id} ${status}`, async () => {
    const view = v.parse(TaskView, await (await t.call("GET", `/api/tasks/${id}`, { token: key })).json());
    return view.status === status ? view : undefined;
  }, 8_000);
}

describe("tasks", () => {
  test(
    "a command task is placed on a new node, dispatched when its agent is ready, and its output comes back",
    async () => {
      const res = await submit(alice.key, {
        prompt: "say hi",
        agent: { type: "command", command: "echo hello from the node" },
        labels: { team: "core" },
      });
      expect(res.status).toBe(201);
      const created = v.parse(TaskView, await res.json());
      expect(created.status).toBe("queued");
      expect(created.keyId).toBe(alice.id);

      const done = await waitForStatus(created.id, "succeeded");
      // The 201 answer is built from the insert itself; it says what the database holds.
      expect(created.transitions).toEqual([{ status: "queued", at: created.createdAt, reason: "task queued" }]);
      expect(done.transitions[0]).toEqual(created.transitions[0]!);
      const stable = (x: typeof done) => ({
        id: x.id,
        prompt: x.prompt,
        repo: x.repo,
        agent: x.agent,
        model: x.model,
        labels: x.labels,
        keyId: x.keyId,
        createdAt: x.createdAt,
      });
      expect(stable(done)).toEqual(stable(created));
      // In lifecycle order; waiting_for_agent is skipped when the agent is ready before the server create returns.
      const lifecycle = ["queued", "provisioning", "waiting_for_agent", "dispatched", "running", "succeeded"];
      const seen = done.transitions.map((x) => x.status);
      expect(seen).toEqual(lifecycle.filter((s) => seen.includes(s as never)) as never);
      expect(seen).toEqual(expect.arrayContaining(["queued", "provisioning", "dispatched", "running", "succeeded"]));
      expect(done.result?.exitCode).toBe(0);
      expect(done.phases.queued).not.toBeNull();
      expect(done.phases.run).not.toBeNull();
      expect(done.nodeId).toMatch(/^n-/);

      const agent = provider.agents.get(done.nodeId!)!;
      const dispatch = agent.dispatches.find((d) => d.taskId === created.id)!;
      expect(dispatch.inference.baseUrl).toBe(`${t.url}/v1`);
      expect(dispatch.inference.token).toMatch(/^samtask_/);
      // The inference token dies with the task.
      expect(await t.edge.authenticate(dispatch.inference.token)).toBeNull();

      const events = v.parse(
        pageOf(TaskEventView),
        await (await t.call("GET", `/api/tasks/${created.id}/events`, { token: alice.key })).json(),
      );
      expect(events.data.some((e) => e.type === "log" && e.message === "hello from the node")).toBe(true);
    },
    15_000,
  );

  test("follow=1 streams status and log events as SSE and ends when the task ends", async () => {
    const created = await (await submit(alice.key, {
      prompt: "x",
      agent: { type: "command", command: "echo streamed; echo oops >&2; exit 3" },
    })).json();
    const res = await t.call("GET", `/api/tasks/${created.id}/events?follow=1`, { token: alice.key });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const text = await res.text(); // ends only when the task ends
    const events = [...text.matchAll(/^event: (\w+)\ndata: (.*)$/gm)].map((m) => ({
      event: m[1],
      data: JSON.parse(m[2]!),
    }));
    expect(events.at(-1)).toEqual({ event: "end", data: { status: "failed", error: "command exited with 3" } });
    expect(events.some((e) => e.event === "log" && e.data.message === "streamed" && e.data.stream === "stdout")).toBe(
      true,
    );
    expect(events.some((e) => e.event === "log" && e.data.message === "oops" && e.data.stream === "stderr")).toBe(true);
    expect(events.filter((e) => e.event === "status").map((e) => e.data.status)).toContain("running");
    for (const e of events.filter((x) => x.event !== "end")) v.parse(TaskEventView, e.data);
  }, 15_000);

  test("a second task of the same key reuses the warm node; another key never shares it", async () => {
    const a = await (await submit(alice.key, { prompt: "again", agent: { type: "command", command: "true" } })).json();
    const doneA = await waitForStatus(a.id, "succeeded");
    const first = (await (await t.call("GET", "/api/tasks?status=succeeded", { token: alice.key })).json()).data as {
      nodeId: string;
    }[];
    expect(new Set(first.map((x) => x.nodeId)).size).toBe(1);
    expect(doneA.phases.boot).toBeNull(); // warm node: no boot

    const b = await (await submit(bob.key, { prompt: "bob", agent: { type: "command", command: "true" } })).json();
    const doneB = await waitForStatus(b.id, "succeeded", bob.key);
    expect(doneB.nodeId).not.toBe(doneA.nodeId);
  }, 15_000);

  test("a key sees only its own tasks; the admin sees all", async () => {
    const mine = v.parse(pageOf(TaskView), await (await t.call("GET", "/api/tasks", { token: bob.key })).json());
    expect(mine.data.every((x) => x.keyId === bob.id)).toBe(true);
    const aliceTask = (await (await t.call("GET", "/api/tasks", { token: alice.key })).json()).data[0];
    expect((await t.call("GET", `/api/tasks/${aliceTask.id}`, { token: bob.key })).status).toBe(403);
    const all = v.parse(pageOf(TaskView), await (await t.call("GET", "/api/tasks")).json());
    expect(new Set(all.data.map((x) => x.keyId))).toEqual(new Set([alice.id, bob.id]));
  });

  test("pagination walks every task once", async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { data: TaskView[]; nextCursor: string | null } = v.parse(
        pageOf(TaskView),
        await (await t.call("GET", `/api/tasks?limit=2${cursor ? `&cursor=${cursor}` : ""}`)).json(),
      );
      seen.push(...page.data.map((x) => x.id));
      cursor = page.nextCursor;
    } while (cursor);
    const all = v.parse(pageOf(TaskView), await (await t.call("GET", "/api/tasks?limit=500")).json());
    expect(seen).toEqual(all.data.map((x) => x.id));
  });

  test("Idempotency-Key returns the same task; a different body under the same key is a 409", async () => {
    const body = { prompt: "once", agent: { type: "command", command: "true" } };
    const first = await submit(alice.key, body, { "Idempotency-Key": "req-1" });
    const again = await submit(alice.key, body, { "Idempotency-Key": "req-1" });
    expect(first.status).toBe(201);
    expect(again.status).toBe(200);
    expect((await again.json()).id).toBe((await first.json()).id);
    const other = await submit(alice.key, { ...body, prompt: "twice" }, { "Idempotency-Key": "req-1" });
    expect(other.status).toBe(409);
    expect((await other.json()).error.code).toBe("idempotency_conflict");
    // Keys are per API key: bob may use the same Idempotency-Key.
    expect((await submit(bob.key, body, { "Idempotency-Key": "req-1" })).status).toBe(201);
  });

  test(
    "a heartbeat answers which reported tasks to stop: unknown, ended or cancelled ones; its own running ones stay",
    async () => {
      const hold = new ProviderDouble({ autoReady: true, double: { mode: "hold", capacity: 3 } });
      const h = await startTestEdge({ provider: hold });
      try {
        const key = await h.createKey();
        // One ready node with room for all three (a node has 2 slots until its agent reports 3), so the three
        // tasks share it and one agent's heartbeat speaks for all of them.
        const warm = (await (await h.call("POST", "/api/nodes", { body: { ownerKeyId: key.id } })).json()).id as string;
        await until(
          "the warm node ready",
          async () => (await (await h.call("GET", `/api/nodes/${warm}`)).json()).status === "ready",
        );
        const submit = async () =>
          (await (await h.call("POST", "/api/tasks", {
            token: key.key,
            body: { prompt: "p", agent: { type: "command", command: "sleep 60" } },
          })).json()).id as string;
        const [running, ended, cancelled] = [await submit(), await submit(), await submit()];
        for (const id of [running, ended, cancelled]) {
          await until(
            `${id} running`,
            async () => (await (await h.call("GET", `/api/tasks/${id}`)).json()).status === "running",
          );
        }
        const agent = [...hold.agents.values()][0]!;
        expect((await agent.finish(ended, { status: "succeeded" })).status).toBe(200);
        expect((await h.call("POST", `/api/tasks/${cancelled}/cancel`, { token: key.key })).status).toBe(200);
        const unknown = "task_not_on_this_edge";
        const answer = await agent.heartbeat([running, ended, unknown, cancelled]);
        expect(answer.cancel).toEqual([ended, unknown, cancelled]);
        expect((await agent.heartbeat([running])).cancel).toEqual([]);
      } finally {
        await h.stop();
      }
    },
    15_000,
  );

  test("cancel stops a running task on its node and answers 409 once it has ended", async () => {
    const hold = new ProviderDouble({ autoReady: true, double: { mode: "hold" } });
    const h = await startTestEdge({ provider: hold });
    try {
      const key = await h.createKey();
      const created = await (await h.call("POST", "/api/tasks", {
        token: key.key,
        body: { prompt: "long", agent: { type: "command", command: "sleep 60" } },
      })).json();
      await until(
        "running",
        async () => (await (await h.call("GET", `/api/tasks/${created.id}`)).json()).status === "running",
      );
      const res = await h.call("POST", `/api/tasks/${created.id}/cancel`, { token: key.key });
      expect(res.status).toBe(200);
      expect((await res.json()).status).toBe("cancelled");
      const agent = [...hold.agents.values()][0]!;
      await until("the agent was told", () => agent.cancels.includes(created.id));
      // The heartbeat answer repeats it while the agent still reports the task.
      expect((await agent.heartbeat([created.id])).cancel).toEqual([created.id]);
      // A late result from the agent is a no-op.
      const late = await agent.finish(created.id, { status: "succeeded" });
      expect(late.status).toBe(200);
      expect((await (await h.call("GET", `/api/tasks/${created.id}`)).json()).status).toBe("cancelled");
      expect((await h.call("POST", `/api/tasks/${created.id}/cancel`, { token: key.key })).status).toBe(409);
    } finally {
      await h.stop();
    }
  }, 15_000);
});
