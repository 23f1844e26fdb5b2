// Growth with bounds: log lines stored a batch per row, a per-task cap with a visible marker, and retention
// that prunes finished tasks' logs, finished tasks, dead nodes and old usage after their timers.
import { afterAll, describe, expect, test } from "bun:test";
import { until } from "../../shared/testing/until.ts";
import { ProviderDouble } from "../testing/provider-double.ts";
import { startTestEdge } from "../testing/test-edge.ts";
import { NodeStore } from "../nodes/store.ts";
import { TaskStore } from "../tasks/store.ts";
import { pruneOnce } from "./retention.ts";
import { retentionFromEnv } from "../../shared/timeouts.ts";
import { SecretBox } from "../auth/secret-box.ts";

const DAY = 86_400_000;
const provider = new ProviderDouble({ autoReady: true, double: { mode: "hold" } });
const t = await startTestEdge({ provider, env: { SAM_TASK_LOG_MAX_LINES: "2500" } });
afterAll(() => t.stop());
const key = await t.createKey();

const lines = (from: number, n: number) =>
  Array.from(
    { length: n },
    (_, i) => ({ seq: from + i, at: 1_000 + from + i, stream: "stdout" as const, message: `line ${from + i}` }),
  );

async function runningTask() {
  const res = await t.call("POST", "/api/tasks", {
    token: key.key,
    headers: { "Idempotency-Key": crypto.randomUUID() },
    body: { prompt: "p" },
  });
  const task = (await res.json()) as { id: string };
  const view = await until("running", async () => {
    const v = await (await t.call("GET", `/api/tasks/${task.id}`)).json();
    return v.status === "running" ? v : undefined;
  });
  return { id: task.id as string, nodeId: view.nodeId as string, agent: provider.agents.get(view.nodeId)! };
}

async function allEvents(taskId: string, limit: number) {
  const out: { id: number; type: string; stream?: string; message: string }[] = [];
  for (let cursor: string | null = "-1"; cursor !== null;) {
    const page = await (await t.call("GET", `/api/tasks/${taskId}/events?cursor=${cursor}&limit=${limit}`)).json();
    out.push(...page.data);
    cursor = page.nextCursor;
  }
  return out;
}

describe("task logs", () => {
  test("a batch of lines is one row; past the cap one marker line says where the rest is; retries change nothing", async () => {
    const { id, agent } = await runningTask();
    for (const from of [0, 1000, 2000]) {
      expect(await (await agent.logs(id, lines(from, 1000))).json()).toEqual({ accepted: 1000, lastSeq: from + 999 });
    }
    // A retried batch (its answer was lost) is acknowledged and ignored.
    expect(await (await agent.logs(id, lines(1000, 1000))).json()).toEqual({ accepted: 0, lastSeq: 2999 });
    const rows = await t.edge.db.execute({
      sql:
        "SELECT type, COUNT(*) AS n FROM task_events WHERE task_id = ? AND type <> 'status' GROUP BY type ORDER BY type",
      args: [id],
    });
    // 1000 + 1000 + 500 lines in three rows, and the marker.
    expect(rows.rows.map((r) => [r.type, Number(r.n)])).toEqual([["lines", 3], ["log", 1]]);

    const events = (await allEvents(id, 700)).filter((e) => e.type === "log");
    expect(events).toHaveLength(2501);
    expect(events.slice(0, 2500).map((e) => e.message)).toEqual(lines(0, 2500).map((l) => l.message));
    expect(events[2500]!.stream).toBe("system");
    expect(events[2500]!.message).toMatch(
      /^\[sam\] output truncated: the edge keeps the first 2500 lines of a task \(SAM_TASK_LOG_MAX_LINES\)/,
    );
    const ids = (await allEvents(id, 700)).map((e) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(ids.length);
    // Later lines are acknowledged (the agent moves on) but not kept, and no second marker is written.
    expect(await (await agent.logs(id, lines(3000, 10))).json()).toEqual({ accepted: 10, lastSeq: 3009 });
    expect((await allEvents(id, 1000)).filter((e) => e.type === "log")).toHaveLength(2501);
    await agent.finish(id, {});
  });
});

describe("retention", () => {
  test("a finished task's logs go after their retention, the task after its own; dead nodes (with their last words) and old usage go too", async () => {
    const { id, nodeId, agent } = await runningTask();
    await agent.logs(id, lines(0, 10));
    await agent.finish(id, {});
    const ended = await until("ended", async () => {
      const v = await (await t.call("GET", `/api/tasks/${id}`)).json();
      return v.status === "succeeded" ? v.transitions.at(-1).at as number : undefined;
    });
    await t.edge.runner.idle();
    // Its last words, kept beside the node's row until the row goes.
    const beat = await t.call("POST", "/api/agent/heartbeat", {
      token: provider.inputs.get(nodeId)!.nodeToken,
      body: {
        nodeId,
        at: ended,
        uptimeMs: 1,
        activeTasks: [],
        recentProblems: [{ at: ended, level: "warn", type: "disk", message: "disk 95% full" }],
      },
    });
    expect(beat.status).toBe(200);
    expect((await (await t.call("DELETE", `/api/nodes/${nodeId}`)).json()).status).toBe("deleted");
    // Pruning reads no sealed secret: any key opens the stores.
    const box = await SecretBox.fromKey(crypto.getRandomValues(new Uint8Array(32)));
    const stores = {
      db: t.edge.db,
      tasks: new TaskStore(t.edge.db, box),
      nodes: new NodeStore(t.edge.db, box),
      retention: retentionFromEnv({}),
    };

    await pruneOnce(stores, ended + 6 * DAY);
    expect((await allEvents(id, 100)).filter((e) => e.type === "log")).toHaveLength(10);

    await t.edge.db.execute({
      sql:
        "INSERT INTO inference_usage (day, key_id, model, key_name, requests) VALUES ('2020-01-01', ?, 'm', 'alice', 1)",
      args: [key.id],
    });
    const week = await pruneOnce(stores, Date.now() + 7 * DAY + 1_000);
    expect(week.logRows).toBeGreaterThanOrEqual(1);
    expect(week.nodes).toBeGreaterThanOrEqual(1);
    expect(week.usage).toBe(1);
    const kept = await allEvents(id, 100);
    expect(kept.filter((e) => e.type === "log")).toEqual([]);
    expect(kept.map((e) => e.type)).toContain("status");
    expect((await t.call("GET", `/api/nodes/${nodeId}`)).status).toBe(404);
    const problems = await t.edge.db.execute({
      sql: "SELECT COUNT(*) AS n FROM node_problems WHERE node_id = ?",
      args: [nodeId],
    });
    expect(Number(problems.rows[0]!.n)).toBe(0);

    await pruneOnce(stores, Date.now() + 30 * DAY + 1_000);
    expect((await t.call("GET", `/api/tasks/${id}`)).status).toBe(404);
    const left = await t.edge.db.execute({
      sql:
        "SELECT (SELECT COUNT(*) FROM task_events WHERE task_id = ?) AS e, (SELECT COUNT(*) FROM task_tokens WHERE task_id = ?) AS k",
      args: [id, id],
    });
    expect([Number(left.rows[0]!.e), Number(left.rows[0]!.k)]).toEqual([0, 0]);
  });
});
