/**
 * A TaskStore on a fresh, migrated `file:` database, with the SQL of every write batch it sends noted in
 * `statements` — for the tests of how many statements the store's writes take.
 */
import type { Client, InStatement } from "@libsql/client";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SecretBox } from "../auth/secret-box.ts";
import { openDatabase } from "../db/client.ts";
import { migrate } from "../db/migrate.ts";
import { MIGRATIONS } from "../db/migrations.ts";
import { wrapClient } from "../db/wrap-client.ts";
import { TaskStore } from "../tasks/store.ts";

export async function countedTaskStore(
  name: string,
): Promise<{ db: Client; store: TaskStore; statements: string[]; close(): void }> {
  const dir = mkdtempSync(join(tmpdir(), `sam-${name}-`));
  const db = await openDatabase(`file:${join(dir, "edge.db")}`, null);
  await migrate(db, MIGRATIONS);
  const statements: string[] = [];
  const counted = wrapClient(db, {
    batch: (stmts: InStatement[], mode?: Parameters<Client["batch"]>[1]) => (
      statements.push(...stmts.map((s) => (typeof s === "string" ? s : s.sql))), db.batch(stmts, mode)
    ),
  });
  const store = new TaskStore(counted, await SecretBox.fromKey(new Uint8Array(32).fill(7)));
  return { db, store, statements, close: () => (db.close(), rmSync(dir, { recursive: true, force: true })) };
}
