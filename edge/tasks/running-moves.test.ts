// The agents' answers of one event-loop turn move their tasks to running in one statement, each task with its
// own time, message and deadline, and each caller told whether its own move happened — as separate
// compare-and-sets would. (Through the HTTP door, submit-dispatch.test.ts sees a task reach running.)
import { afterAll, expect, test } from "bun:test";
import { countedTaskStore } from "../testing/counted-store.ts";

const { db, store, statements, close } = await countedTaskStore("running-moves");
afterAll(close);

async function task(id: string, status: "dispatched" | "queued"): Promise<void> {
  await db.execute({
    sql: `INSERT INTO tasks (id, key_id, request_hash, status, status_at, prompt, agent, labels, node_id, created_at,
      updated_at) VALUES (?, 'key_1', 'h', ?, 1, 'p', '{"type":"builtin"}', '{}', 'node_1', 1, 1)`,
    args: [id, status],
  });
}

const row = async (id: string) => (await db.execute({ sql: "SELECT * FROM tasks WHERE id = ?", args: [id] })).rows[0]!;
const runningEvents = async (id: string) =>
  (await db.execute({
    sql: "SELECT at, message FROM task_events WHERE task_id = ? AND status = 'running'",
    args: [id],
  })).rows.map((r) => ({ at: Number(r.at), message: String(r.message) }));

test("one turn's moves to running are one statement; each caller gets its own answer and values", async () => {
  await task("t_a", "dispatched");
  await task("t_b", "dispatched");
  await task("t_q", "queued");
  const move = (id: string, n: number) =>
    store.markRunning(id, {
      message: `running on node node_1 (${id})`,
      deadline: { at: 1_000 + n, timer: "run" },
      now: 100 + n,
    });
  statements.length = 0;
  const answers = await Promise.all([move("t_a", 1), move("t_b", 2), move("t_a", 3), move("t_q", 4), move("t_x", 5)]);
  // t_a asked twice: only the first call made the move; a queued task and an unknown one do not move.
  expect(answers).toEqual([true, true, false, false, false]);
  expect(statements).toHaveLength(1);
  expect(statements[0]).toContain("UPDATE tasks SET status = 'running'");

  const a = await row("t_a");
  expect([a.status, a.status_at, a.deadline_at, a.deadline_timer]).toEqual(["running", 101, 1_001, "run"]);
  expect(Number((await row("t_b")).deadline_at)).toBe(1_002);
  expect((await row("t_q")).status).toBe("queued");
  expect(await runningEvents("t_a")).toEqual([{ at: 101, message: "running on node node_1 (t_a)" }]);
  expect(await runningEvents("t_b")).toEqual([{ at: 102, message: "running on node node_1 (t_b)" }]);
});

test("a move in a later turn is a compare-and-set of its own: a task already running does not move again", async () => {
  statements.length = 0;
  expect(await store.markRunning("t_a", { message: "again", deadline: { at: 9, timer: "run" }, now: 9 })).toBe(false);
  expect(await store.markRunning("t_q", { message: "no", deadline: { at: 9, timer: "run" }, now: 9 })).toBe(false);
  expect(statements).toHaveLength(2);
  expect(await runningEvents("t_a")).toHaveLength(1);
});
