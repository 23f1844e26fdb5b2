import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "./client.ts";

const dir = mkdtempSync(join(tmpdir(), "sam-stmt-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("a cached statement answers with fresh data and arguments every time, and sees a schema change", async () => {
  const db = await openDatabase(`file:${join(dir, "a.db")}`, null);
  await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)");
  for (let i = 1; i <= 50; i++) {
    await db.execute({ sql: "INSERT INTO t (id, name) VALUES (?, ?)", args: [i, `n${i}`] });
    const row = (await db.execute({ sql: "SELECT * FROM t WHERE id = ?", args: [i] })).rows[0]!;
    expect(row.name).toBe(`n${i}`);
    const count = (await db.execute("SELECT count(*) AS n FROM t")).rows[0]!;
    expect(Number(count.n)).toBe(i);
  }
  // A write statement answers from the remembered "returns no rows" outcome after its first call.
  for (let i = 0; i < 3; i++) {
    const updated = await db.execute({
      sql: "UPDATE t SET name = ? WHERE id = ? AND name <> ?",
      args: ["renamed", 1, "renamed"],
    });
    expect(updated.rowsAffected).toBe(i === 0 ? 1 : 0);
    expect(updated.rows).toEqual([]);
  }
  await db.execute({ sql: "UPDATE t SET name = ? WHERE id = ?", args: ["n1", 1] });
  const returned = await db.batch([{
    sql: "INSERT INTO t (id, name) VALUES (?, ?) RETURNING id, name",
    args: [99, "last"],
  }], "write");
  expect(returned[0]!.rows[0]).toMatchObject({ id: 99, name: "last" });
  // A column added later shows up in `SELECT *` that was prepared (and cached) before.
  await db.execute("ALTER TABLE t ADD COLUMN extra TEXT DEFAULT 'x'");
  const widened = await db.execute({ sql: "SELECT * FROM t WHERE id = ?", args: [1] });
  expect(widened.columns).toEqual(["id", "name", "extra"]);
  expect(widened.rows[0]).toMatchObject({ id: 1, name: "n1", extra: "x" });
  db.close();
});
