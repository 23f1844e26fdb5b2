import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "../db/client.ts";
import { migrate } from "../db/migrate.ts";
import { INFERENCE_MIGRATIONS, UsageRecorder } from "./usage.ts";

const dir = mkdtempSync(join(tmpdir(), "sam-usage-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("events either side of UTC midnight, in any order, are counted on their own days", async () => {
  const db = await openDatabase(`file:${join(dir, "usage.db")}`, null);
  await migrate(db, INFERENCE_MIGRATIONS);
  const usage = new UsageRecorder(db, 3_600_000, () => {});
  const event = (at: string, promptTokens: number) =>
    usage.record({
      keyId: "k1",
      keyName: "alice",
      model: "m",
      promptTokens,
      completionTokens: 1,
      estimated: false,
      at: Date.parse(at),
    });
  event("2025-03-01T23:59:59.999Z", 10);
  event("2025-03-02T00:00:00.000Z", 20);
  event("2025-03-01T00:00:00.000Z", 30);
  event("2025-03-02T23:59:59.999Z", 40);
  event("2025-03-03T00:00:00.000Z", 50);
  const rows = await usage.query({ keyId: "k1", from: "2025-03-01", to: "2025-03-03" });
  expect(rows.map((r) => [r.day, r.requests, r.promptTokens])).toEqual([
    ["2025-03-03", 1, 50],
    ["2025-03-02", 2, 60],
    ["2025-03-01", 2, 40],
  ]);
  await usage.close();
  db.close();
});
