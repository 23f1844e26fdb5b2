/**
 * What the agent's two SQLite databases (events.db, metrics.db) share: opening with WAL and a versioned
 * schema, retention that deletes in bounded chunks, and consistent snapshots for the export routes.
 */
import { Database } from "bun:sqlite";
import { nodeFs } from "../runtime/lazy-node-modules.ts";

/** One schema step per entry; `user_version` records how many have been applied. */
export type Migration = string;

const BUSY_TIMEOUT_MS = 5_000;
const WAL_AUTOCHECKPOINT_PAGES = 200;

export function openDatabase(path: string, migrations: readonly Migration[]): Database {
  const db = new Database(path, { create: true, readwrite: true, strict: true });
  try {
    db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    // The commit that crosses this many WAL pages copies them into the main file on the event loop: at the
    // default 1,000 pages that was a 6–10 ms stall during an ingest burst; 200 pages (800 KiB) keeps each
    // under ≈ 2–4 ms for about the same total work (so /health stays fast during an event burst).
    db.exec(`PRAGMA wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
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
 * large backlog (an agent that was off for weeks) never stalls the writer or the HTTP server. `keyColumn`
 * names the row's key: `rowid`, or the primary key of a `WITHOUT ROWID` table (which has no rowid).
 */
export async function pruneInChunks(
  db: Database,
  table: string,
  timeColumn: string,
  cutoff: number,
  opts: { keyColumn?: string; chunk?: number } = {},
): Promise<number> {
  const key = opts.keyColumn ?? "rowid";
  const chunk = opts.chunk ?? 2_000;
  const del = db.query(
    `DELETE FROM ${table} WHERE ${key} IN (SELECT ${key} FROM ${table} WHERE ${timeColumn} < ? ORDER BY ${timeColumn} LIMIT ${chunk})`,
  );
  let total = 0;
  for (;;) {
    const { changes } = del.run(cutoff);
    total += changes;
    if (changes < chunk) return total;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/** A point-in-time copy of a database, readable through `fd` (`size` bytes) until `release()`. */
export type Snapshot = { fd: number; size: number; release(): void };

/**
 * Consistent snapshots of one WAL database whose every write goes through `db` (the agent's connection).
 *
 * The fast path copies nothing: `wal_checkpoint(TRUNCATE)` moves every committed page into the main file
 * and empties the WAL; a second, read-only connection then opens a read transaction. With the WAL empty
 * that reader reads the main file alone (WAL read-mark 0), and SQLite never backfills a page into the
 * main file while such a reader exists: autocheckpoints, explicit checkpoints and the checkpoint on close
 * all stop at it. So the main file stays byte-for-byte the snapshot while writes keep appending to the WAL,
 * and it can be sent straight from disk. `release()` ends the read transaction; the next commit's
 * autocheckpoint catches up. When the checkpoint cannot complete (another reader, a second export in
 * flight) it falls back to `VACUUM INTO` a temp file, which costs a full copy before the first byte.
 */
export class Snapshots {
  private readonly db: Database;
  private readonly path: string;
  private pin: Database | null = null;

  constructor(db: Database, path: string) {
    this.db = db;
    this.path = path;
  }

  /**
   * `inPlace: false` always copies. `tempPath` (which must not exist) is used only by the copy, and is
   * gone when this returns.
   */
  open(tempPath: string, opts: { inPlace: boolean }): Snapshot {
    return (opts.inPlace ? this.pinMainFile() : null) ?? this.vacuumInto(tempPath);
  }

  /** Whether a download currently holds the main file (tests, benchmarks). */
  get pinned(): boolean {
    return this.pin !== null;
  }

  /** End a pin still held (the store is closing); the download in flight is cut off anyway. */
  close(): void {
    this.pin?.close();
    this.pin = null;
  }

  private pinMainFile(): Snapshot | null {
    if (this.pin) return null;
    // Never wait for a checkpoint on the event loop: when it is busy, the fallback is quicker.
    this.db.exec("PRAGMA busy_timeout = 0");
    let busy: number;
    try {
      ({ busy } = this.db.query("PRAGMA wal_checkpoint(TRUNCATE)").get() as { busy: number });
    } finally {
      this.db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
    if (busy !== 0) return null;
    const reader = new Database(this.path, { readonly: true });
    let fd: number | null = null;
    try {
      reader.exec("BEGIN");
      reader.query("SELECT count(*) FROM sqlite_master").get();
      // Nothing can have been written since the checkpoint (one writer, same thread), but prove the
      // reader's snapshot is the main file alone before relying on it.
      if (walBytes(this.path) !== 0) throw new Error("the WAL is not empty");
      fd = nodeFs().openSync(this.path, "r");
      const size = nodeFs().fstatSync(fd).size;
      this.pin = reader;
      let released = false;
      return {
        fd,
        size,
        release: () => {
          if (released) return;
          released = true;
          if (this.pin === reader) this.pin = null;
          reader.close();
        },
      };
    } catch {
      if (fd !== null) nodeFs().closeSync(fd);
      reader.close();
      return null;
    }
  }

  private vacuumInto(tempPath: string): Snapshot {
    try {
      // `VACUUM INTO` reads inside one transaction: a single point in time even while other writes commit.
      this.db.query("VACUUM INTO ?").run(tempPath);
      const fd = nodeFs().openSync(tempPath, "r");
      return { fd, size: nodeFs().fstatSync(fd).size, release: () => {} };
    } finally {
      // Our descriptor keeps the unlinked file readable; nothing is left behind on disk.
      nodeFs().rmSync(tempPath, { force: true });
    }
  }
}

function walBytes(path: string): number {
  try {
    return nodeFs().statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
}
