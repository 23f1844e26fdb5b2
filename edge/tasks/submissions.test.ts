// The submissions of one turn (a burst) are one statement: each key's tasks take the free slots of its ready,
// fresh nodes in submission order, oldest node first, never more than a node has; the rest stay queued. What
// each caller gets back is what the table holds. (Through the HTTP door under Deno: submissions.deno-test.ts.)
import { afterAll, beforeEach, expect, test } from "bun:test";
import type { TaskSubmission } from "../../shared/wire/task.ts";
import { countedTaskStore } from "../testing/counted-store.ts";
import { type SubmitDispatch, taskFromRow } from "./store.ts";

const { db, store, statements, close } = await countedTaskStore("submissions");
afterAll(close);

const NOW = 1_000_000;
const FRESH_AFTER = NOW - 60_000;

beforeEach(async () => {
  await db.batch(["DELETE FROM task_events", "DELETE FROM task_tokens", "DELETE FROM tasks", "DELETE FROM nodes"]);
  statements.length = 0;
});

async function node(
  id: string,
  key: string,
  o: { slots: number; createdAt: number; status?: string; heartbeatAt?: number; taken?: number },
): Promise<void> {
  await db.execute({
    sql: `INSERT INTO nodes (id, status, status_at, provider, owner_key_id, node_token_hash, agent_token, slots,
      created_at, ready_at, last_heartbeat_at, tasks_on_node) VALUES (?, ?, 1, 'local', ?, ?, 'sealed', ?, ?, 1, ?, ?)`,
    args: [id, o.status ?? "ready", key, `hash-${id}`, o.slots, o.createdAt, o.heartbeatAt ?? NOW, o.taken ?? 0],
  });
}

const dispatch = (n: number): SubmitDispatch => ({
  heartbeatAfter: FRESH_AFTER,
  deadline: { at: NOW + 5_000, timer: "dispatched" },
  nextAttemptAt: NOW + 1_000,
  inferenceTokenHash: `token-hash-${n}`,
});
const submission = (prompt: string): TaskSubmission =>
  ({ prompt, agent: { type: "command", command: "true" }, labels: {} }) as TaskSubmission;
const submit = (key: string, n: number, idem: string | null = `idem-${key}-${n}`, prompt = `task ${n}`) =>
  store.submit(key, submission(prompt), idem, { at: NOW + 9_000, timer: "queued" }, NOW + n, dispatch(n));

const onNode = async () =>
  Object.fromEntries(
    (await db.execute("SELECT id, tasks_on_node, slots FROM nodes ORDER BY id")).rows.map((r) => [
      String(r.id),
      `${r.tasks_on_node}/${r.slots}`,
    ]),
  );
const stored = async (id: string) =>
  taskFromRow((await db.execute({ sql: "SELECT * FROM tasks WHERE id = ?", args: [id] })).rows[0]!);

test("one turn's submissions are one statement; each key fills its fresh ready nodes' free slots, oldest first", async () => {
  await node("n_a_old", "key_a", { slots: 3, createdAt: 10, taken: 1 });
  await node("n_a_new", "key_a", { slots: 2, createdAt: 20 });
  await node("n_a_stale", "key_a", { slots: 4, createdAt: 5, heartbeatAt: FRESH_AFTER - 1 });
  await node("n_a_booting", "key_a", { slots: 4, createdAt: 6, status: "booting" });
  await node("n_b", "key_b", { slots: 1, createdAt: 30 });
  const results = await Promise.all([
    ...Array.from({ length: 7 }, (_, n) => submit("key_a", n)),
    ...Array.from({ length: 3 }, (_, n) => submit("key_b", 10 + n)),
  ]);
  expect(statements.filter((s) => s.includes("INSERT INTO tasks"))).toHaveLength(1);
  expect(results.map((r) => r.task.nodeId)).toEqual([
    "n_a_old",
    "n_a_old",
    "n_a_new",
    "n_a_new",
    null,
    null,
    null,
    "n_b",
    null,
    null,
  ]);
  expect(results.map((r) => r.task.status)).toEqual([
    ...Array(4).fill("dispatched"),
    ...Array(3).fill("queued"),
    "dispatched",
    "queued",
    "queued",
  ]);
  // Exactly full, never beyond; the stale and the booting node took nothing.
  expect(await onNode()).toEqual({
    n_a_booting: "0/4",
    n_a_new: "2/2",
    n_a_old: "3/3",
    n_a_stale: "0/4",
    n_b: "1/1",
  });
  // The node each dispatched caller gets is its own, read in the same statement.
  expect(results.map((r) => r.node?.id ?? null)).toEqual(results.map((r) => r.task.nodeId));
  // Every record handed back is the row as stored; the tokens filed are the dispatched tasks'.
  for (const r of results) {
    expect(r.created).toBe(true);
    expect(r.task).toEqual(await stored(r.task.id));
  }
  const tokens = (await db.execute("SELECT token_hash FROM task_tokens ORDER BY token_hash")).rows.map((r) =>
    String(r.token_hash)
  );
  expect(tokens).toEqual(["token-hash-0", "token-hash-1", "token-hash-10", "token-hash-2", "token-hash-3"]);
  // In submission order: the list (newest first) reads them back the way they came.
  const seqs = results.map((r) => r.task.seq);
  expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
});

test("an Idempotency-Key sent twice in one statement makes one task; with another body it is a 409", async () => {
  await node("n", "key_a", { slots: 4, createdAt: 1 });
  const [first, again] = await Promise.all([submit("key_a", 1, "same"), submit("key_a", 2, "same", "task 1")]);
  expect(first!.created).toBe(true);
  expect(again!.created).toBe(false);
  expect(again!.task.id).toBe(first!.task.id);
  const refused = await Promise.allSettled([submit("key_a", 3, "other"), submit("key_a", 4, "other", "different")]);
  expect(refused[0]!.status).toBe("fulfilled");
  expect(refused[1]!.status).toBe("rejected");
  expect(((refused[1] as PromiseRejectedResult).reason as { status?: number }).status).toBe(409);
  expect(await onNode()).toEqual({ n: "2/4" });
});

test("a submission SQLite refuses fails alone: its neighbours in the statement are written", async () => {
  await node("n", "key_a", { slots: 4, createdAt: 1 });
  await db.execute(`CREATE TRIGGER refuse_boom BEFORE INSERT ON tasks WHEN NEW.prompt = 'boom'
    BEGIN SELECT RAISE(ABORT, 'refused'); END`);
  try {
    const results = await Promise.allSettled([
      submit("key_a", 1),
      submit("key_a", 2, "idem-boom", "boom"),
      submit("key_a", 3),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    for (const r of results) {
      if (r.status === "fulfilled") expect(r.value.task.status).toBe("dispatched");
    }
    expect(await onNode()).toEqual({ n: "2/4" });
  } finally {
    await db.execute("DROP TRIGGER refuse_boom");
  }
});

test("with no ready node every submission is queued, and comes back as stored", async () => {
  await node("n_booting", "key_a", { slots: 4, createdAt: 1, status: "booting" });
  const results = await Promise.all([submit("key_a", 1), submit("key_a", 2)]);
  for (const r of results) {
    expect(r.task.status).toBe("queued");
    expect(r.node).toBeNull();
    expect(r.task).toEqual(await stored(r.task.id));
  }
  expect((await db.execute("SELECT COUNT(*) AS n FROM task_tokens")).rows[0]!.n).toBe(0);
});
