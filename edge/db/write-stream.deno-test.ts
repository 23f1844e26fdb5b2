// The edge's writes to sqld over one long-lived Hrana stream, under Deno, against a real sqld behind a proxy
// that records every pipeline request (its baton, its requests) and can misbehave as the network and the server
// do (edge/testing/sqld-proxy.ts).
import assert from "node:assert/strict";
import { type Client, openDatabase } from "./client.ts";
import { WriteStream } from "./write-stream.ts";
import { type ProxiedSqld, type SeenRequest, startProxiedSqld } from "../testing/sqld-proxy.ts";

/** A proxied sqld and the edge's client for it, for the length of one test. */
async function withDb(fn: (db: Client, p: ProxiedSqld) => Promise<void>): Promise<void> {
  const p = await startProxiedSqld();
  const db = await openDatabase(p.url, null);
  try {
    await fn(db, p);
  } finally {
    db.close();
    await p.stop();
  }
}

/** The pipeline requests that carried writes, in order: all but the tests' reads and bare closes. */
const writesOf = (seen: SeenRequest[]) =>
  seen.filter((s) => !s.body.includes("SELECT ") && !(s.kinds.length === 1 && s.kinds[0] === "close"));
const count = async (db: Client) => Number((await db.execute("SELECT COUNT(*) AS n FROM t")).rows[0]!.n);

Deno.test("the edge's writes share one stream: one server connection, the baton passed on, texts stored once", () =>
  withDb(async (db, p) => {
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)");
    for (let i = 0; i < 5; i++) {
      const rs = await db.batch([
        { sql: "INSERT INTO t (v) VALUES (?) RETURNING id, v", args: [`a${i}`] },
        { sql: "INSERT INTO t (v) VALUES (?) RETURNING id, v", args: [`b${i}`] },
      ], "write");
      assert.deepEqual(rs.map((r) => [r.columns, r.rows[0]!.v, r.rowsAffected]), [
        [["id", "v"], `a${i}`, 1],
        [["id", "v"], `b${i}`, 1],
      ]);
      assert.equal(Number(rs[1]!.lastInsertRowid), Number(rs[1]!.rows[0]!.id));
    }
    const one = await db.execute({ sql: "UPDATE t SET v = v || '!' WHERE v = ?", args: ["a0"] });
    assert.equal(one.rowsAffected, 1);
    const writes = writesOf(p.seen);
    assert.equal(writes.length, 7); // the table, five batches, the update
    // One stream opened (no baton) for the first write; every later write carries the baton it was given.
    assert.deepEqual(writes.map((w) => w.baton === null), [true, false, false, false, false, false, false]);
    // The INSERT's text went to the server once, stored on the stream; later batches refer to it by id.
    assert.equal(p.seen.filter((s) => s.body.includes("INSERT INTO t (v) VALUES (?) RETURNING id, v")).length, 1);
    // Reads are not on the write stream: each is a stream of its own, opened and closed in one request.
    const before = p.seen.length;
    assert.equal(await count(db), 10);
    const read = p.seen.slice(before).find((s) => s.body.includes("COUNT(*)"))!;
    assert.deepEqual([read.baton, read.kinds.includes("close")], [null, true]);
  }));

Deno.test("a failing statement fails its batch alone, with SQLite's code, rolled back; the stream goes on", () =>
  withDb(async (db, p) => {
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)");
    await db.batch([{ sql: "INSERT INTO t (v) VALUES ('x')", args: [] }], "write");
    const err = await db.batch([
      { sql: "INSERT INTO t (v) VALUES ('y')", args: [] },
      { sql: "INSERT INTO t (v) VALUES ('x')", args: [] },
    ], "write").then(() => null, (e) => e as { code?: string });
    assert.match(String(err?.code), /^SQLITE_CONSTRAINT/);
    assert.equal(await count(db), 1); // 'y' rolled back with the failing statement
    await db.batch([{ sql: "INSERT INTO t (v) VALUES ('z')", args: [] }], "write");
    assert.equal(await count(db), 2);
    assert.equal(writesOf(p.seen).filter((w) => w.baton === null).length, 1);
  }));

Deno.test("a stream the server expired ran nothing: the write goes again once, on a new stream", () =>
  withDb(async (db, p) => {
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    await db.batch([{ sql: "INSERT INTO t (v) VALUES ('first')", args: [] }], "write");
    p.fail("expired");
    await db.batch([{ sql: "INSERT INTO t (v) VALUES ('second')", args: [] }], "write");
    assert.deepEqual((await db.execute("SELECT v FROM t ORDER BY id")).rows.map((r) => r.v), ["first", "second"]);
    // The table (a new stream), first, second refused on that stream, second again on a new one.
    assert.deepEqual(writesOf(p.seen).map((w) => w.baton === null), [true, false, false, true]);
  }));

Deno.test("a baton the server does not know (it restarted) fails that write only; the next opens a new stream", () =>
  withDb(async (db, p) => {
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    p.fail("invalid-baton");
    await assert.rejects(db.batch([{ sql: "INSERT INTO t (v) VALUES ('refused')", args: [] }], "write"));
    await db.batch([{ sql: "INSERT INTO t (v) VALUES ('next')", args: [] }], "write");
    assert.deepEqual((await db.execute("SELECT v FROM t")).rows.map((r) => r.v), ["next"]);
    assert.deepEqual(writesOf(p.seen).map((w) => w.baton === null), [true, false, true]);
  }));

// Deno's fetch sends a POST again when a reused connection closes before the answer (Bun's does not): here the
// lost request arrives twice with the same baton, and sqld refuses the second instead of running it again.
Deno.test("a write whose answer was lost runs once: its caller gets the error, the next write a new stream", () =>
  withDb(async (db, p) => {
    // No unique key: a second run of the lost insert would show as a second row.
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    await db.batch([{ sql: "INSERT INTO t (v) VALUES ('first')", args: [] }], "write");
    p.fail("drop-after-run");
    await assert.rejects(db.batch([{ sql: "INSERT INTO t (v) VALUES ('lost')", args: [] }], "write"));
    await db.batch([{ sql: "INSERT INTO t (v) VALUES ('next')", args: [] }], "write");
    assert.deepEqual((await db.execute("SELECT v FROM t ORDER BY id")).rows.map((r) => r.v), ["first", "lost", "next"]);
    // The next write went on a new stream.
    assert.equal(writesOf(p.seen).at(-1)!.baton, null);
  }));

Deno.test("an idle write stream is closed by the edge before the server would expire it", async () => {
  const p = await startProxiedSqld();
  const writes = new WriteStream(p.url, undefined, fetch, 100);
  try {
    await writes.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)");
    await writes.execute({ sql: "INSERT INTO t (v) VALUES (?)", args: ["a"] });
    assert.equal(writes.opened, 1);
    await new Promise((r) => setTimeout(r, 400));
    // The close went out on the stream's baton; the next write opens another stream.
    assert.ok(p.seen.some((s) => s.baton !== null && s.kinds.join() === "close"), JSON.stringify(p.seen));
    await writes.execute({ sql: "INSERT INTO t (v) VALUES (?)", args: ["b"] });
    assert.equal(writes.opened, 2);
  } finally {
    writes.close();
    await p.stop();
  }
});

Deno.test("the write stream presents the database token, given apart or as the URL's authToken", async () => {
  const p = await startProxiedSqld();
  try {
    for (
      const [url, token, expected] of [[p.url, "given-apart", "given-apart"], [
        `${p.url}?authToken=in-url`,
        null,
        "in-url",
      ]] as const
    ) {
      const db = await openDatabase(url, token);
      const before = p.seen.length;
      await db.batch([{ sql: "SELECT 1", args: [] }], "write");
      db.close();
      const writes = p.seen.slice(before).filter((s) => s.kinds.includes("batch"));
      assert.deepEqual(writes.map((w) => w.authorization), [`Bearer ${expected}`]);
    }
  } finally {
    await p.stop();
  }
});
