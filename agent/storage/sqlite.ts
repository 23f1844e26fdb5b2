/**
 * What the agent's two SQLite databases (events.db, metrics.db) share: opening with WAL and a versioned
 * schema, retention that deletes in bounded chunks, and consistent snapshots for the export routes.
 */
import { Database } from "bun:sqlite";

/** One schema step per entry; `user_version` records how many have been applied. */
export type Migration = string;

export function openDatabase(path: string, migrations: readonly Migration[]): Database {
  const db = new Database(path, { create: true, readwrite: true, strict: true });
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    const { user_version: current } = db.query("PRAGMA user_version").get() as { user_version: number };
    if (current > migrations.length) {
      throw new Error(`${path} has schema version ${current}, newer than this agent knows (${migrations.length})`);
    }
    for (let i = current; i < migrations.length; i++) {
      db.transaction(() => {
        db.exec(migrations[i]!);
        db.exec(`PRAGMA user_version = ${i + 1}`);
      })();
    }
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/**
 * Delete rows older than `cutoff` in chunks of `chunk`, yielding to the event loop between chunks so a
 * large backlog (an agent that was off for weeks) never stalls the writer or the HTTP server.
 */
export async function pruneInChunks(
  db: Database,
  table: string,
  timeColumn: string,
  cutoff: number,
  chunk = 2_000,
): Promise<number> {
  const del = db.query(
    `DELETE FROM ${table} WHERE rowid IN (SELECT rowid FROM ${table} WHERE ${timeColumn} < ? ORDER BY ${timeColumn} LIMIT ${chunk})`,
  );
  let total = 0;
  for (;;) {
    const { changes } = del.run(cutoff);
    total += changes;
    if (changes < chunk) return total;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/**
 * Write a consistent snapshot of `db` to `dest` (which must not exist). `VACUUM INTO` reads inside one
 * transaction, so the copy is a single point in time even while other writes commit; a WAL checkpoint
 * alone would not give that.
 */
export function snapshotInto(db: Database, dest: string): void {
  db.query("VACUUM INTO ?").run(dest);
}
