// The edge's client for a remote database (sqld here, Turso in production), under Deno's fetch: the answers
// to writes come uncompressed (the server deflating a few RETURNING rows, and the edge inflating them, was
// ≈ 7 % of sqld's CPU per submission), reads still ask for compression. A recording proxy between the client
// and a real sqld sees each request's Accept-Encoding and each answer's Content-Encoding.
import assert from "node:assert/strict";
import { openDatabase } from "./client.ts";
import { startProxiedSqld } from "../testing/sqld-proxy.ts";
import { signedJwt, startSqld } from "../testing/sqld.ts";

Deno.test("writes ask sqld for uncompressed answers; reads still accept compressed ones", async () => {
  const p = await startProxiedSqld();
  const db = await openDatabase(p.url, null);
  try {
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    const rows = Array.from(
      { length: 50 },
      (_, i) => ({ sql: "INSERT INTO t (v) VALUES (?) RETURNING *", args: [`v${i}`] }),
    );
    const written = await db.batch(rows, "write");
    assert.equal(written.at(-1)!.rows[0]!.v, "v49");
    const read = await db.execute("SELECT * FROM t ORDER BY id");
    assert.equal(read.rows.length, 50);

    const writes = p.seen.filter((s) => s.kinds.includes("batch"));
    const reads = p.seen.filter((s) => s.body.includes("SELECT * FROM t"));
    assert.ok(writes.length >= 1 && reads.length >= 1, JSON.stringify(p.seen));
    for (const w of writes) assert.deepEqual([w.accept, w.encoding], ["identity", ""]);
    for (const r of reads) assert.match(r.accept, /gzip/);
    // sqld compresses what it may: the read's answer came deflated, so the write's plain one was the header's doing.
    assert.ok(reads.some((r) => r.encoding !== ""), JSON.stringify(reads));
  } finally {
    db.close();
    await p.stop();
  }
});

Deno.test("against a sqld that takes only signed tokens, as Turso does: the edge's reads and writes present its token", async () => {
  const { publicKeyPem, token } = signedJwt();
  const sqld = await startSqld({ jwtKey: publicKeyPem });
  const db = await openDatabase(sqld.url, token);
  const anonymous = await openDatabase(sqld.url, null);
  try {
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    await db.batch([{ sql: "INSERT INTO t (v) VALUES (?)", args: ["with the token"] }], "write");
    assert.deepEqual((await db.execute("SELECT v FROM t")).rows.map((r) => r.v), ["with the token"]);
    // The same server refuses both paths without it: the token is what let them through.
    await assert.rejects(anonymous.batch([{ sql: "INSERT INTO t (v) VALUES ('no')", args: [] }], "write"), /401|auth/i);
    await assert.rejects(anonymous.execute("SELECT v FROM t"), /401|auth/i);
  } finally {
    db.close();
    anonymous.close();
    await sqld.stop();
  }
});
