/**
 * Tasks in libSQL: submission, compare-and-set transitions (each recorded as a task event in the same
 * batch), log lines de-duplicated by the agent's `seq`, and the reads behind `/api/tasks*`.
 */
import type { InArgs, InValue } from "@libsql/client";
import { HttpError } from "../../shared/errors.ts";
import type { TaskEventView } from "../../shared/wire/api.ts";
import { TERMINAL_STATUSES, type RepoPush, type TaskAgent, type TaskLogEvent, type TaskResult, type TaskStatus, type TaskSubmission } from "../../shared/wire/task.ts";
import { randomToken, sha256Hex } from "../auth/tokens.ts";
import type { Client } from "../db/client.ts";

/** A fixed list of statuses as an SQL `IN` list, e.g. `('succeeded','failed','cancelled')`. */
export const sqlList = (values: readonly string[]) => `(${values.map((v) => `'${v}'`).join(",")})`;
/** Statuses that hold a slot on a node. */
export const ON_NODE_SQL = sqlList(["provisioning", "waiting_for_agent", "dispatched", "running"] satisfies TaskStatus[]);
export const TERMINAL_SQL = sqlList(TERMINAL_STATUSES);

export type TaskRecord = {
  id: string;
  keyId: string;
  status: TaskStatus;
  statusAt: number;
  deadlineAt: number | null;
  deadlineTimer: string | null;
  prompt: string;
  repo: { url: string; branch: string | null; credential: string | null; push: RepoPush | null } | null;
  agent: TaskAgent;
  model: string | null;
  labels: Record<string, string>;
  nodeId: string | null;
  attempts: number;
  nextAttemptAt: number | null;
  cancelRequested: boolean;
  result: TaskResult | null;
  error: string | null;
  createdAt: number;
  updatedAt: number;
  seq: number;
};

type Row = Record<string, unknown>;
const num = (x: unknown) => (x === null || x === undefined ? null : Number(x));
const str = (x: unknown) => (x === null || x === undefined ? null : String(x));

export function taskFromRow(r: Row): TaskRecord {
  return {
    id: String(r.id),
    keyId: String(r.key_id),
    status: String(r.status) as TaskStatus,
    statusAt: Number(r.status_at),
    deadlineAt: num(r.deadline_at),
    deadlineTimer: str(r.deadline_timer),
    prompt: String(r.prompt),
    repo: r.repo_url === null ? null : {
      url: String(r.repo_url), branch: str(r.repo_branch), credential: str(r.repo_credential),
      push: r.repo_push === null || r.repo_push === undefined ? null : (JSON.parse(String(r.repo_push)) as RepoPush),
    },
    agent: JSON.parse(String(r.agent)) as TaskAgent,
    model: str(r.model),
    labels: JSON.parse(String(r.labels)) as Record<string, string>,
    nodeId: str(r.node_id),
    attempts: Number(r.attempts),
    nextAttemptAt: num(r.next_attempt_at),
    cancelRequested: Number(r.cancel_requested) === 1,
    result: r.result === null ? null : (JSON.parse(String(r.result)) as TaskResult),
    error: str(r.error),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    seq: Number(r.seq),
  };
}

/** The first status event of every task. */
export const QUEUED_MESSAGE = "task queued";

/** The transitions of a task just submitted, as `statusEvents` would read them back. */
export function submittedTransitions(task: TaskRecord): { status: TaskStatus; at: number; message: string }[] {
  return [{ status: "queued", at: task.createdAt, message: QUEUED_MESSAGE }];
}

export function newTaskId(): string {
  return `t_${randomToken("x").slice(2, 22)}`;
}

/** A stable digest of a submission, so a replayed Idempotency-Key with a different body is refused. */
function requestHash(s: TaskSubmission): string {
  return sha256Hex(JSON.stringify(s));
}

export class TaskStore {
  constructor(private readonly db: Client) {}

  /**
   * Insert a queued task, or return the one an earlier request with the same Idempotency-Key made. One write
   * batch; a new task comes back from the insert itself (RETURNING), so nothing is read again.
   */
  async submit(keyId: string, s: TaskSubmission, idempotencyKey: string | null, deadline: { at: number; timer: string }, now = Date.now()): Promise<{ task: TaskRecord; created: boolean }> {
    const id = newTaskId();
    const hash = requestHash(s);
    const [insert] = await this.db.batch([
      {
        sql: `INSERT INTO tasks (id, key_id, idempotency_key, request_hash, status, status_at, deadline_at, deadline_timer, prompt,
                repo_url, repo_branch, repo_credential, repo_push, agent, model, labels, created_at, updated_at)
              VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
              ON CONFLICT (key_id, idempotency_key) DO NOTHING
              RETURNING *`,
        args: [id, keyId, idempotencyKey, hash, now, deadline.at, deadline.timer, s.prompt, s.repo?.url ?? null, s.repo?.branch ?? null,
          s.repo?.credential ?? null, s.repo?.push ? JSON.stringify(s.repo.push) : null, JSON.stringify(s.agent), s.model ?? null, JSON.stringify(s.labels), now, now],
      },
      {
        sql: "INSERT INTO task_events (task_id, at, type, status, message) SELECT ?, ?, 'status', 'queued', ? WHERE changes() = 1",
        args: [id, now, QUEUED_MESSAGE],
      },
    ], "write");
    const inserted = insert!.rows[0] as Row | undefined;
    if (inserted) return { task: taskFromRow(inserted), created: true };
    const r = await this.db.execute({ sql: "SELECT * FROM tasks WHERE key_id = ? AND idempotency_key = ?", args: [keyId, idempotencyKey] });
    const existing = r.rows[0] as Row | undefined;
    if (!existing) throw new Error("idempotent insert found neither a new nor an existing task");
    if (existing.request_hash !== hash) {
      throw new HttpError(409, "Idempotency-Key was already used with a different request body", { code: "idempotency_conflict" });
    }
    return { task: taskFromRow(existing), created: false };
  }

  async get(id: string): Promise<TaskRecord | null> {
    const r = await this.db.execute({ sql: "SELECT * FROM tasks WHERE id = ?", args: [id] });
    return r.rows[0] ? taskFromRow(r.rows[0] as Row) : null;
  }

  /** Where each of `ids` stands, for a heartbeat's list (one statement, however many): absent ids are unknown. */
  async standing(ids: string[]): Promise<Map<string, Pick<TaskRecord, "nodeId" | "status" | "cancelRequested">>> {
    if (ids.length === 0) return new Map();
    const r = await this.db.execute({
      sql: "SELECT id, node_id, status, cancel_requested FROM tasks WHERE id IN (SELECT value FROM json_each(?))",
      args: [JSON.stringify(ids)],
    });
    return new Map((r.rows as Row[]).map((row) => [String(row.id), {
      nodeId: str(row.node_id), status: String(row.status) as TaskStatus, cancelRequested: Number(row.cancel_requested) === 1,
    }]));
  }

  async list(q: { keyId: string | null; status: TaskStatus | null; cursor: number | null; limit: number }): Promise<{ tasks: TaskRecord[]; nextCursor: string | null }> {
    const where: string[] = [];
    const args: InValue[] = [];
    if (q.keyId !== null) (where.push("key_id = ?"), args.push(q.keyId));
    if (q.status !== null) (where.push("status = ?"), args.push(q.status));
    if (q.cursor !== null) (where.push("seq < ?"), args.push(q.cursor));
    args.push(q.limit + 1);
    const r = await this.db.execute({
      sql: `SELECT * FROM tasks ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY seq DESC LIMIT ?`,
      args,
    });
    const tasks = r.rows.slice(0, q.limit).map((row) => taskFromRow(row as Row));
    return { tasks, nextCursor: r.rows.length > q.limit ? String(tasks[tasks.length - 1]!.seq) : null };
  }

  /**
   * Compare-and-set: move the task from one of `from` to `to`, and record the transition as an event in the
   * same write batch. Returns false when another actor moved it first, which is the normal race outcome.
   */
  async transition(id: string, from: readonly TaskStatus[], to: TaskStatus, opts: {
    message: string;
    error?: string | null;
    nodeId?: string | null;
    deadline?: { at: number; timer: string } | null;
    nextAttemptAt?: number | null;
    result?: TaskResult;
    /** Extra SQL condition on the row, e.g. a node capacity check; args follow the rest. */
    andWhere?: { sql: string; args: InValue[] };
    /** Store this task inference token hash with the move (in the same batch), only when the move happens. */
    inferenceTokenHash?: string;
    now?: number;
  }): Promise<boolean> {
    const now = opts.now ?? Date.now();
    const sets = ["status = ?", "status_at = ?", "updated_at = ?", "deadline_at = ?", "deadline_timer = ?"];
    const args: InValue[] = [to, now, now, opts.deadline?.at ?? null, opts.deadline?.timer ?? null];
    if (opts.nodeId !== undefined) (sets.push("node_id = ?"), args.push(opts.nodeId));
    if (opts.nextAttemptAt !== undefined) (sets.push("next_attempt_at = ?", "attempts = 0"), args.push(opts.nextAttemptAt));
    if (opts.error !== undefined) (sets.push("error = ?"), args.push(opts.error));
    if (opts.result !== undefined) (sets.push("result = ?"), args.push(JSON.stringify(opts.result)));
    const whereArgs: InValue[] = [id, ...from];
    let extra = "";
    if (opts.andWhere) {
      extra = ` AND ${opts.andWhere.sql}`;
      whereArgs.push(...opts.andWhere.args);
    }
    const [update] = await this.db.batch([
      {
        sql: `UPDATE tasks SET ${sets.join(", ")} WHERE id = ? AND status IN (${from.map(() => "?").join(",")})${extra}`,
        args: [...args, ...whereArgs],
      },
      {
        sql: "INSERT INTO task_events (task_id, at, type, status, message) SELECT ?, ?, 'status', ?, ? WHERE changes() = 1",
        args: [id, now, to, opts.message],
      },
      // changes() is now the event's: 1 exactly when the move happened.
      ...(opts.inferenceTokenHash === undefined ? [] : [{
        sql: "INSERT INTO task_tokens (token_hash, task_id, created_at) SELECT ?, ?, ? WHERE changes() = 1",
        args: [opts.inferenceTokenHash, id, now],
      }]),
    ], "write");
    return update!.rowsAffected === 1;
  }

  /** Claim a retry: only the actor that moves `attempts` on from what it read gets to retry. */
  async claimRetry(id: string, status: TaskStatus, attempts: number, nextAttemptAt: number, now = Date.now()): Promise<boolean> {
    const r = await this.db.execute({
      sql: "UPDATE tasks SET attempts = attempts + 1, next_attempt_at = ?, updated_at = ? WHERE id = ? AND status = ? AND attempts = ? AND (next_attempt_at IS NULL OR next_attempt_at <= ?)",
      args: [nextAttemptAt, now, id, status, attempts, now],
    });
    return r.rowsAffected === 1;
  }

  async setNextAttempt(id: string, status: TaskStatus, at: number | null): Promise<void> {
    await this.db.execute({ sql: "UPDATE tasks SET next_attempt_at = ? WHERE id = ? AND status = ?", args: [at, id, status] });
  }

  async requestCancel(id: string): Promise<void> {
    await this.db.execute({ sql: "UPDATE tasks SET cancel_requested = 1, updated_at = ? WHERE id = ?", args: [Date.now(), id] });
  }

  /** A fresh task inference token (one per dispatch attempt); only its hash is stored. */
  async mintInferenceToken(taskId: string, hash: string): Promise<void> {
    await this.db.execute({ sql: "INSERT INTO task_tokens (token_hash, task_id, created_at) VALUES (?, ?, ?)", args: [hash, taskId, Date.now()] });
  }

  /** Append log lines; a line whose seq the edge already has is ignored, so retried batches are harmless. */
  async appendLogs(taskId: string, events: TaskLogEvent[]): Promise<{ accepted: number; lastSeq: number }> {
    const results = await this.db.batch(events.map((e) => ({
      sql: "INSERT OR IGNORE INTO task_events (task_id, at, type, stream, message, agent_seq) VALUES (?, ?, 'log', ?, ?, ?)",
      args: [taskId, e.at, e.stream, e.message, e.seq],
    })), "write");
    const accepted = results.reduce((n, r) => n + r.rowsAffected, 0);
    const r = await this.db.execute({ sql: "SELECT MAX(agent_seq) AS s FROM task_events WHERE task_id = ?", args: [taskId] });
    return { accepted, lastSeq: Number(r.rows[0]?.s ?? -1) };
  }

  async events(taskId: string, afterId: number, limit: number): Promise<TaskEventView[]> {
    const r = await this.db.execute({
      sql: "SELECT id, at, type, status, stream, message FROM task_events WHERE task_id = ? AND id > ? ORDER BY id LIMIT ?",
      args: [taskId, afterId, limit],
    });
    return r.rows.map((row) => {
      const e: TaskEventView = { id: Number(row.id), at: Number(row.at), type: row.type === "log" ? "log" : "status", message: String(row.message) };
      if (row.status !== null) e.status = String(row.status) as TaskStatus;
      if (row.stream !== null) e.stream = String(row.stream) as "stdout";
      return e;
    });
  }

  async statusEvents(taskId: string): Promise<{ status: TaskStatus; at: number; message: string }[]> {
    const r = await this.db.execute({ sql: "SELECT status, at, message FROM task_events WHERE task_id = ? AND type = 'status' ORDER BY id", args: [taskId] });
    return r.rows.map((row) => ({ status: String(row.status) as TaskStatus, at: Number(row.at), message: String(row.message) }));
  }

  /** Non-terminal tasks whose runner deadline has passed. */
  async pastDeadline(now: number, limit = 500): Promise<TaskRecord[]> {
    const r = await this.db.execute({ sql: `SELECT * FROM tasks WHERE status NOT IN ${TERMINAL_SQL} AND deadline_at <= ? LIMIT ?`, args: [now, limit] });
    return r.rows.map((row) => taskFromRow(row as Row));
  }

  async inStatus(statuses: readonly TaskStatus[], opts: { nodeId?: string; keyId?: string; retryDue?: number; enteredBefore?: number; limit?: number } = {}): Promise<TaskRecord[]> {
    const where = [`status IN (${statuses.map(() => "?").join(",")})`];
    const args: InValue[] = [...statuses];
    if (opts.nodeId !== undefined) (where.push("node_id = ?"), args.push(opts.nodeId));
    if (opts.keyId !== undefined) (where.push("key_id = ?"), args.push(opts.keyId));
    if (opts.retryDue !== undefined) (where.push("(next_attempt_at IS NULL OR next_attempt_at <= ?)"), args.push(opts.retryDue));
    if (opts.enteredBefore !== undefined) (where.push("status_at <= ?"), args.push(opts.enteredBefore));
    args.push(opts.limit ?? 1000);
    const r = await this.db.execute({ sql: `SELECT * FROM tasks WHERE ${where.join(" AND ")} ORDER BY seq LIMIT ?`, args });
    return r.rows.map((row) => taskFromRow(row as Row));
  }
}
