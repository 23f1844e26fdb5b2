import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "../../db/client.ts";
import { migrate } from "../../db/migrate.ts";
import { INFERENCE_MIGRATIONS } from "../usage.ts";
import { ResponseStore } from "./store.ts";

const dir = mkdtempSync(join(tmpdir(), "sam-responses-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("kept per key for the retention time, larger ones not kept, expired rows deleted on write", async () => {
  const db = await openDatabase(`file:${join(dir, "sam.db")}`, null);
  await migrate(db, INFERENCE_MIGRATIONS);
  let now = 1_000_000;
  const store = new ResponseStore(db, 60_000, 200, () => now);
  const stored = { history: [{ role: "user", content: "hi" }], response: { id: "resp_a" } };
  expect(await store.put("resp_a", "k1", stored)).toBe(true);
  expect(await store.get("resp_a", "k1")).toEqual(stored);
  expect(await store.get("resp_a", "k2")).toBeNull();
  expect(await store.put("resp_big", "k1", { history: [{ role: "user", content: "x".repeat(300) }], response: {} }))
    .toBe(false);
  expect(await store.get("resp_big", "k1")).toBeNull();
  now += 59_999;
  expect(await store.get("resp_a", "k1")).not.toBeNull();
  now += 1;
  expect(await store.get("resp_a", "k1")).toBeNull();
  await store.put("resp_b", "k1", stored);
  const rows = await db.execute("SELECT id FROM inference_responses");
  expect(rows.rows.map((r) => r.id)).toEqual(["resp_b"]);
  expect(await store.delete("resp_b", "k2")).toBe(false);
  expect(await store.delete("resp_b", "k1")).toBe(true);
  db.close();
});
