/**
 * The durable side of task runs: every run's state and its numbered output lines, in `work.db` under the
 * agent's data dir (bun:sqlite, WAL). Lines stay here until the edge has acknowledged them and the result,
 * so an edge outage or an agent restart loses nothing; a run still `running` when the agent starts is one
 * the agent lost and is reported failed.
 *
 * This is its own small database rather than a table in `events.db`: the event store's contract
 * (`EventRecorder`) is record-only, while delivery needs to read back what has not been acknowledged.
 */
import { Database } from "bun:sqlite";
import * as v from "valibot";
import { nodeFs } from "../runtime/lazy-node-modules.ts";
import { type TaskLogEvent, TaskResult } from "../../shared/wire/task.ts";
import type { TaskRunState } from "../contracts.ts";

export type RunRow = {
  taskId: string;
  status: TaskRunState["status"];
  startedAt: number;
  finishedAt: number | null;
  exitCode: number | null;
  workspaceDir: string | null;
  result: TaskResult | null;
  resultDelivered: boolean;
  cleaned: boolean;
};

type RawRun = {
  task_id: string;
  status: string;
  started_at: number;
  finished_at: number | null;
  exit_code: number | null;
  workspace_dir: string | null;
  result: string | null;
  result_delivered: number;
  cleaned: number;
};

function toRow(r: RawRun): RunRow {
  return {
    taskId: r.task_id,
    status: r.status as RunRow["status"],
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    exitCode: r.exit_code,
    workspaceDir: r.workspace_dir,
    result: r.result ? v.parse(TaskResult, JSON.parse(r.result)) : null,
    resultDelivered: r.result_delivered === 1,
    cleaned: r.cleaned === 1,
  };
}

export class Outbox {
  private readonly db: Database;
  /** Next seq per task, kept in memory so appending a line is one insert. */
  private readonly nextSeq = new Map<string, number>();

  constructor(dataDir: string) {
    const file = `${dataDir}/work.db`;
    // Owner-only, like the agent's other databases; SQLite gives the -wal and -shm the mode of the database.
    // (The agent makes the data dir before this; other callers may not.)
    nodeFs().mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    for (const f of [file, `${file}-wal`, `${file}-shm`]) {
      if (nodeFs().existsSync(f)) nodeFs().chmodSync(f, 0o600);
      else if (f === file) nodeFs().writeFileSync(f, "", { mode: 0o600 });
    }
    this.db = new Database(file, { create: true, strict: true });
    this.db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS runs (
        task_id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        exit_code INTEGER,
        workspace_dir TEXT,
        acked_seq INTEGER NOT NULL DEFAULT -1,
        result TEXT,
        result_delivered INTEGER NOT NULL DEFAULT 0,
        cleaned INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE IF NOT EXISTS lines (
        task_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        at INTEGER NOT NULL,
        stream TEXT NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (task_id, seq)
      ) WITHOUT ROWID;
    `);
  }

  /** False when the task id is already known (a duplicate dispatch). */
  createRun(taskId: string, startedAt: number, workspaceDir: string): boolean {
    const res = this.db
      .query("INSERT OR IGNORE INTO runs (task_id, status, started_at, workspace_dir) VALUES (?, 'running', ?, ?)")
      .run(taskId, startedAt, workspaceDir);
    if (res.changes === 1) this.nextSeq.set(taskId, 0);
    return res.changes === 1;
  }

  run(taskId: string): RunRow | null {
    const r = this.db.query("SELECT * FROM runs WHERE task_id = ?").get(taskId) as RawRun | null;
    return r ? toRow(r) : null;
  }

  runsWithStatus(status: RunRow["status"]): RunRow[] {
    return (this.db.query("SELECT * FROM runs WHERE status = ?").all(status) as RawRun[]).map(toRow);
  }

  /** Finished runs whose logs or result the edge has not acknowledged yet. */
  undelivered(): RunRow[] {
    return (this.db.query("SELECT * FROM runs WHERE status != 'running' AND result_delivered = 0").all() as RawRun[])
      .map(toRow);
  }

  /** Finished, delivered runs whose workspace is still on disk (e.g. the agent stopped before cleanup). */
  uncleaned(): RunRow[] {
    return (this.db.query("SELECT * FROM runs WHERE result_delivered = 1 AND cleaned = 0").all() as RawRun[]).map(
      toRow,
    );
  }

  private seqFor(taskId: string): number {
    let next = this.nextSeq.get(taskId);
    if (next === undefined) {
      const row = this.db
        .query(
          "SELECT MAX(COALESCE((SELECT MAX(seq) FROM lines WHERE task_id = ?1), -1), acked_seq) AS last FROM runs WHERE task_id = ?1",
        )
        .get(taskId) as { last: number | null } | null;
      next = (row?.last ?? -1) + 1;
    }
    return next;
  }

  appendLine(taskId: string, stream: TaskLogEvent["stream"], message: string, at = Date.now()): TaskLogEvent {
    const seq = this.seqFor(taskId);
    this.db.query("INSERT INTO lines (task_id, seq, at, stream, message) VALUES (?, ?, ?, ?, ?)").run(
      taskId,
      seq,
      at,
      stream,
      message,
    );
    this.nextSeq.set(taskId, seq + 1);
    return { seq, at, stream, message };
  }

  /** Lines after the last acknowledged seq, oldest first. */
  pending(taskId: string, limit: number): TaskLogEvent[] {
    return this.db
      .query(
        `SELECT seq, at, stream, message FROM lines
         WHERE task_id = ?1 AND seq > (SELECT acked_seq FROM runs WHERE task_id = ?1)
         ORDER BY seq LIMIT ?2`,
      )
      .all(taskId, limit) as TaskLogEvent[];
  }

  ack(taskId: string, seq: number): void {
    this.db.query("UPDATE runs SET acked_seq = MAX(acked_seq, ?) WHERE task_id = ?").run(seq, taskId);
  }

  ackedSeq(taskId: string): number {
    const r = this.db.query("SELECT acked_seq FROM runs WHERE task_id = ?").get(taskId) as { acked_seq: number } | null;
    return r?.acked_seq ?? -1;
  }

  finish(taskId: string, result: TaskResult): void {
    this.db
      .query("UPDATE runs SET status = ?, finished_at = ?, exit_code = ?, result = ? WHERE task_id = ?")
      .run(result.status, result.finishedAt, result.exitCode, JSON.stringify(result), taskId);
  }

  /** The edge has the result: the lines are no longer needed here (the event store keeps its own copy). */
  markDelivered(taskId: string): void {
    this.db.transaction(() => {
      this.db.query("UPDATE runs SET result_delivered = 1 WHERE task_id = ?").run(taskId);
      this.db.query("DELETE FROM lines WHERE task_id = ?").run(taskId);
    })();
  }

  markCleaned(taskId: string): void {
    this.db.query("UPDATE runs SET cleaned = 1 WHERE task_id = ?").run(taskId);
  }

  close(): void {
    this.db.close();
  }
}
