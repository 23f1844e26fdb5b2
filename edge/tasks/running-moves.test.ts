// The agents' answers of one event-loop turn move their tasks to running in one statement, each task with its
// own time, message and deadline, and each caller told whether its own move happened — as separate
// compare-and-sets would. (Through the HTTP door, submit-dispatch.test.ts sees a task reach running.)
import { afterAll, expect, test } from "bun:test";
import { setImmediate } from "node:timers";
import type { TaskSubmission } from "../../shared/wire/task.ts";
import { SecretBox } from "../auth/secret-box.ts";
import { groupCommits } from "../db/group-commit.ts";
import { countedTaskStore } from "../testing/counted-store.ts";
import { RUNNING_MOVES_SQL, TaskStore } from "./store.ts";

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

test("each move finds its task by id, not by walking every dispatched task", async () => {
  // On a database of its own: the native client steps an EXPLAIN of a write once and leaves it open.
  const own = await countedTaskStore("running-moves-plan");
  const plan = (await own.db.execute({ sql: `EXPLAIN QUERY PLAN ${RUNNING_MOVES_SQL}`, args: ["[]"] })).rows.map((
    r,
  ) => String(r.detail));
  own.close();
  expect(plan).toEqual([
    expect.stringMatching(/^SCAN m VIRTUAL TABLE/),
    expect.stringMatching(/^SEARCH tasks USING INDEX sqlite_autoindex_tasks_1 \(id=\?\)/),
  ]);
});

test("the moves made while submissions come in ride with the next submissions statement: one commit for both", async () => {
  const commits: number[] = [];
  const grouped = new TaskStore(
    groupCommits(db, { onCommit: (n) => commits.push(n) }),
    await SecretBox.fromKey(new Uint8Array(32).fill(7)),
  );
  const now = Date.now();
  await db.execute({
    sql: `INSERT INTO nodes (id, status, status_at, provider, owner_key_id, node_token_hash, agent_token, slots,
      created_at, ready_at, last_heartbeat_at) VALUES ('node_r', 'ready', 1, 'local', 'key_r', 'hash-r', 'sealed', 100, 1, ?, ?)`,
    args: [now, now],
  });
  const submit = (n: number) =>
    grouped.submit(
      "key_r",
      { prompt: `task ${n}`, agent: { type: "command", command: "true" }, labels: {} } as TaskSubmission,
      `ride-${n}`,
      { at: now + 9_000, timer: "queued" },
      now,
      {
        heartbeatAfter: now - 1,
        deadline: { at: now + 5_000, timer: "dispatched" },
        nextAttemptAt: now + 1_000,
        inferenceTokenHash: `ride-hash-${n}`,
      },
    );
  const first = await Promise.all([0, 1, 2, 3].map(submit));
  expect(first.map((r) => r.task.status)).toEqual(["dispatched", "dispatched", "dispatched", "dispatched"]);
  commits.length = 0;
  // The next burst starts coming in (its statement waits to fill up to four), and the first burst's agents answer
  // meanwhile; the rest of the burst arrives a turn later.
  const second = [4, 5].map(submit);
  const moves = first.map(({ task }) =>
    grouped.markRunning(task.id, {
      message: "running on node node_r",
      deadline: { at: now + 60_000, timer: "run" },
      now,
    })
  );
  await new Promise((r) => setImmediate(r));
  second.push(...[6, 7].map(submit));
  expect(await Promise.all(moves)).toEqual([true, true, true, true]);
  expect((await Promise.all(second)).map((r) => r.task.status)).toEqual([
    "dispatched",
    "dispatched",
    "dispatched",
    "dispatched",
  ]);
  // The first transaction held both: the submissions' statement and the four moves. (Had the machine stalled past
  // the fill time, the first two submissions would have gone without the last two: [2, 1]; alone, the moves are
  // a commit of their own, [1, 1].)
  expect(commits[0]).toBe(2);
  const running = await db.execute("SELECT COUNT(*) AS n FROM tasks WHERE node_id = 'node_r' AND status = 'running'");
  expect(Number(running.rows[0]!.n)).toBe(4);
});
