/**
 * Group commit: the write batches issued in one event-loop turn (concurrent submissions, dispatch and
 * running transitions) are written in one transaction instead of one each, and while a group is being
 * written the next one gathers. On `file:` every commit appends a WAL frame for each page it touched (the
 * commit was ~60 µs of a submission's ~1 ms of CPU, three times over); a group shares the commit and the
 * pages its rows have in common. Over HTTP (sqld, Turso) a group is one request instead of one each.
 *
 * Each caller still gets only its own results, and only after the group has committed (durably, as before).
 * A statement that fails rolls the whole group back; the group's batches are then run again one by one, so
 * only the failing batch fails (with its own error), never its neighbours. Nothing is committed twice: a
 * group SQLite refused left nothing behind, and a group whose outcome is unknown (the request to a remote
 * database failed) is not run again — each of its callers gets that error.
 */
import type { Client, InStatement, ResultSet } from "@libsql/client";
import { setImmediate } from "node:timers";
import { wrapClient } from "./wrap-client.ts";

/** Most batches in one transaction (one request over HTTP); the rest wait for the next group. */
const MAX_GROUP = 256;

type Pending = { stmts: InStatement[]; resolve(results: ResultSet[]): void; reject(err: unknown): void };

export type GroupCommitOptions = {
  /** Called after each transaction with the number of batches it held (tests, benchmarks). */
  onCommit?: (batches: number) => void;
};

/** An error SQLite itself raised for a statement (constraint, busy, …): its transaction was rolled back. */
export function isStatementError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_");
}

export function groupCommits(client: Client, o: GroupCommitOptions = {}): Client {
  let queue: Pending[] = [];
  let scheduled = false;
  // One group in flight at a time: over HTTP the next group gathers while the last one is on the wire.
  let writing = false;

  const schedule = () => {
    if (scheduled || writing || queue.length === 0) return;
    scheduled = true;
    // After this turn's I/O callbacks: everything they wrote joins the group. (A 0 ms timer waits 1-2 ms.)
    setImmediate(() => void flush());
  };

  const runAlone = (p: Pending) =>
    client.batch(p.stmts, "write").then((results) => (o.onCommit?.(1), p.resolve(results)), p.reject);

  async function write(group: Pending[]): Promise<void> {
    if (group.length === 1) return runAlone(group[0]!);
    let results: ResultSet[];
    try {
      results = await client.batch(group.flatMap((p) => p.stmts), "write");
    } catch (err) {
      // A statement SQLite refused rolled the whole group back: safe to run each batch again alone. Any other
      // failure (a request timeout or a dropped connection to sqld) leaves the outcome unknown — the group may
      // have committed — so running it again could write twice: every caller gets the error, as one would have.
      if (!isStatementError(err)) {
        for (const p of group) p.reject(err);
        return;
      }
      for (const p of group) await runAlone(p);
      return;
    }
    o.onCommit?.(group.length);
    let at = 0;
    for (const p of group) p.resolve(results.slice(at, at += p.stmts.length));
  }

  async function flush(): Promise<void> {
    scheduled = false;
    writing = true;
    const group = queue.splice(0, MAX_GROUP);
    try {
      await write(group);
    } finally {
      writing = false;
      schedule();
    }
  }

  const batch = (stmts: InStatement[]) =>
    new Promise<ResultSet[]>((resolve, reject) => {
      queue.push({ stmts, resolve, reject });
      schedule();
    });

  return wrapClient(client, {
    batch: (stmts: InStatement[], mode?: Parameters<Client["batch"]>[1]) =>
      mode === "write" && stmts.length > 0 ? batch(stmts) : client.batch(stmts, mode),
  });
}
