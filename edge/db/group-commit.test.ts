import { afterAll, beforeAll, expect, test } from "bun:test";
import { type Client, createClient } from "@libsql/client";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { groupCommits } from "./group-commit.ts";
import { wrapClient } from "./wrap-client.ts";

const dir = mkdtempSync(join(tmpdir(), "sam-group-"));
const url = `file:${join(dir, "g.db")}`;
const commits: number[] = [];
let raw: Client;
let db: Client;
let other: Client;

beforeAll(async () => {
  raw = createClient({ url, concurrency: 1 });
  await raw.execute("PRAGMA journal_mode = WAL");
  await raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)");
  await raw.execute("CREATE TABLE log (t_id INTEGER NOT NULL)");
  db = groupCommits(raw, { onCommit: (n) => commits.push(n) });
  other = createClient({ url }); // another connection, as another process would read
});
afterAll(() => {
  other.close();
  raw.close();
  rmSync(dir, { recursive: true, force: true });
});

const insert = (id: number, name: string) => [
  { sql: "INSERT INTO t (id, name) VALUES (?, ?) ON CONFLICT (id) DO NOTHING RETURNING id, name", args: [id, name] },
  { sql: "INSERT INTO log (t_id) SELECT ? WHERE changes() = 1", args: [id] },
];

test("batches written in one turn share one transaction, each caller gets its own results, durably", async () => {
  commits.length = 0;
  const results = await Promise.all(
    Array.from({ length: 10 }, (_, i) => db.batch(insert(i + 1, `n${i + 1}`), "write")),
  );
  expect(commits).toEqual([10]);
  results.forEach((r, i) => {
    expect(r).toHaveLength(2);
    expect(r[0]!.rows[0]).toMatchObject({ id: i + 1, name: `n${i + 1}` });
    expect(r[1]!.rowsAffected).toBe(1);
  });
  // Answered only once committed: another connection sees every row.
  expect(Number((await other.execute("SELECT COUNT(*) AS n FROM t")).rows[0]!.n)).toBe(10);
  expect(Number((await other.execute("SELECT COUNT(*) AS n FROM log")).rows[0]!.n)).toBe(10);
  // changes() stays per batch: a conflicting insert in the same group logs nothing.
  const [dup, fresh] = await Promise.all([db.batch(insert(1, "again"), "write"), db.batch(insert(11, "n11"), "write")]);
  expect(dup![0]!.rows).toEqual([]);
  expect(dup![1]!.rowsAffected).toBe(0);
  expect(fresh![1]!.rowsAffected).toBe(1);
});

test("a failing batch fails alone, with its own error and nothing of it written; its neighbours commit", async () => {
  commits.length = 0;
  const outcomes = await Promise.allSettled([
    db.batch(insert(20, "a"), "write"),
    // The second statement breaks the UNIQUE name: the first one of this batch must not stay either.
    db.batch([{ sql: "INSERT INTO t (id, name) VALUES (21, 'b')", args: [] }, {
      sql: "INSERT INTO t (id, name) VALUES (22, 'a')",
      args: [],
    }], "write"),
    db.batch(insert(23, "c"), "write"),
  ]);
  expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
  expect(String((outcomes[1] as PromiseRejectedResult).reason)).toContain("UNIQUE");
  const ids = (await other.execute("SELECT id FROM t WHERE id BETWEEN 20 AND 29 ORDER BY id")).rows.map((r) =>
    Number(r.id)
  );
  expect(ids).toEqual([20, 23]);
  expect(commits).toEqual([1, 1]); // the group was rolled back, then each batch ran alone
});

test("reads, and batches in other modes, are not held back", async () => {
  commits.length = 0;
  const [read] = await db.batch([{ sql: "SELECT COUNT(*) AS n FROM t", args: [] }], "read");
  expect(Number(read!.rows[0]!.n)).toBeGreaterThan(0);
  await db.batch([{ sql: "INSERT INTO t (id, name) VALUES (30, 'd')", args: [] }], "deferred");
  expect(commits).toEqual([]);
  expect((await other.execute("SELECT name FROM t WHERE id = 30")).rows[0]!.name).toBe("d");
});

test("while a group is being written (a slow server), the next one gathers batches from many turns", async () => {
  const sizes: number[] = [];
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let calls = 0;
  // The first write waits until released, as a request to a remote database would.
  const slow = wrapClient(raw, {
    batch: async (...args: Parameters<Client["batch"]>) => {
      if (calls++ === 0) await held;
      return raw.batch(...args);
    },
  });
  const grouped = groupCommits(slow, { onCommit: (n) => sizes.push(n) });
  const first = grouped.batch(insert(40, "first"), "write");
  const later: Promise<unknown>[] = [];
  for (let i = 41; i <= 44; i++) {
    await new Promise((r) => setImmediate(r)); // each in a turn of its own
    later.push(grouped.batch(insert(i, `later${i}`), "write"));
  }
  release();
  await Promise.all([first, ...later]);
  expect(sizes).toEqual([1, 4]);
  expect(calls).toBe(2);
});

test("a burst larger than one group is written in several, in order", async () => {
  const sizes: number[] = [];
  const grouped = groupCommits(raw, { onCommit: (n) => sizes.push(n) });
  const results = await Promise.all(
    Array.from({ length: 300 }, (_, i) => grouped.batch(insert(1000 + i, `burst${i}`), "write")),
  );
  expect(sizes).toEqual([256, 44]);
  expect(results.every((r, i) => r[0]!.rows[0]!.id === 1000 + i)).toBe(true);
});

test("a group whose outcome is unknown (the request to the database failed) is not run again: every caller gets the error", async () => {
  let calls = 0;
  // The request times out after the server may have committed: running the batches again could write twice.
  const flaky = wrapClient(raw, {
    batch: async (...args: Parameters<Client["batch"]>) => {
      calls++;
      await raw.batch(...args);
      throw new DOMException("The operation timed out.", "TimeoutError");
    },
  });
  const grouped = groupCommits(flaky);
  const outcomes = await Promise.allSettled(
    [50, 51, 52].map((id) => grouped.batch(insert(id, `timeout${id}`), "write")),
  );
  expect(outcomes.map((o) => o.status)).toEqual(["rejected", "rejected", "rejected"]);
  expect(String((outcomes[0] as PromiseRejectedResult).reason)).toContain("timed out");
  expect(calls).toBe(1);
  // Written once (the server did commit), never twice.
  expect(Number((await other.execute("SELECT COUNT(*) AS n FROM log WHERE t_id BETWEEN 50 AND 52")).rows[0]!.n)).toBe(
    3,
  );
});
