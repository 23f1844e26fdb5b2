/**
 * Tasks in libSQL: submission, compare-and-set transitions (each recorded as a task event in the same
 * batch), log lines de-duplicated by the agent's `seq`, and the reads behind `/api/tasks*`.
 */
import type { InValue } from "@libsql/client";
import { HttpError } from "../../shared/errors.ts";
import type { NodeStatus, TaskEventView } from "../../shared/wire/api.ts";
import {
  type RepoPush,
  type TaskAgent,
  type TaskLogEvent,
  type TaskResult,
  type TaskStatus,
  type TaskSubmission,
  TERMINAL_STATUSES,
} from "../../shared/wire/task.ts";
import type { SecretBox } from "../auth/secret-box.ts";
import { randomToken, sha256Hex } from "../auth/tokens.ts";
import type { Client } from "../db/client.ts";
import { isStatementError } from "../db/group-commit.ts";
import { TurnBatch } from "../db/turn-batch.ts";

type NodeRow = Record<string, unknown>;

/** A fixed list of statuses as an SQL `IN` list, e.g. `('succeeded','failed','cancelled')`. */
export const sqlList = (values: readonly string[]) => `(${values.map((v) => `'${v}'`).join(",")})`;
/** Statuses that hold a slot on a node. */
export const ON_NODE_SQL = sqlList(
  ["provisioning", "waiting_for_agent", "dispatched", "running"] satisfies TaskStatus[],
);
export const TERMINAL_SQL = sqlList(TERMINAL_STATUSES);
/** Every status before the end: a task in one of these may still need its sealed credential. */
export const ACTIVE_STATUSES = [
  "queued",
  "provisioning",
  "waiting_for_agent",
  "dispatched",
  "running",
] as const satisfies TaskStatus[];
export const ACTIVE_SQL = sqlList(ACTIVE_STATUSES);

export type TaskRecord = {
  id: string;
  keyId: string;
  status: TaskStatus;
  statusAt: number;
  deadlineAt: number | null;
  deadlineTimer: string | null;
  prompt: string;
  /** `credential` as stored: sealed, and gone once the task has ended (`openCredential` reads it). */
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
  /** The last agent log seq the edge has, and how many lines it kept (above the cap: the marker was written). */
  logSeq: number;
  logLines: number;
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
      url: String(r.repo_url),
      branch: str(r.repo_branch),
      credential: str(r.repo_credential),
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
    logSeq: Number(r.log_seq ?? -1),
    logLines: Number(r.log_lines ?? 0),
  };
}

/** The first status event of every task. */
export const QUEUED_MESSAGE = "task queued";

export const dispatchingMessage = (nodeId: string) => `dispatching to node ${nodeId}`;

/** The transitions of a task just submitted (and perhaps dispatched in the same batch), as `statusEvents` would read them back. */
export function submittedTransitions(task: TaskRecord): { status: TaskStatus; at: number; message: string }[] {
  const queued = { status: "queued" as const, at: task.createdAt, message: QUEUED_MESSAGE };
  if (task.status !== "dispatched" || !task.nodeId) return [queued];
  return [queued, { status: "dispatched", at: task.statusAt, message: dispatchingMessage(task.nodeId) }];
}

/**
 * Event ids as the API shows them: a stored row's id × this, plus the line's index in its row (a row holds
 * one status change, or a batch of up to 1,000 log lines). Ids stay ordered and a cursor can point into a row.
 */
export const EVENT_ID_STRIDE = 1024;

/** A task's move to running: what `transition` would set for it. */
export type RunningMove = { id: string; message: string; deadline: { at: number; timer: string }; now: number };

/** A dispatch decided with the submission: to a ready node of the key with a free slot, if there is one. */
export type SubmitDispatch = {
  /** A ready node counts only with a heartbeat (or its ready call) after this. */
  heartbeatAfter: number;
  deadline: { at: number; timer: string };
  nextAttemptAt: number;
  inferenceTokenHash: string;
  /** The id the new task gets (the inference token names it); a fresh one when absent. */
  taskId?: string;
};

/**
 * Conditions a transition checks on the row in its own statement, so nothing can change between the runner's
 * read and its move (another instance, a callback).
 */
export type TransitionGuard = {
  /** The node is still in this status, still the key's, and has a free slot. */
  nodeHasSlot?: { nodeId: string; status: NodeStatus; keyId: string };
  /** The task's deadline is at or before this time: it did not move on to a later one meanwhile. */
  deadlineBy?: number;
  /** The task entered its status at or before this time: it did not leave and come back meanwhile. */
  enteredBy?: number;
};

/** Base62 in ASCII order, so that a fixed-width number sorts as text the way it sorts as a number. */
const SORTABLE = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/**
 * `t_` + the creation time (milliseconds, 8 base62 characters in ASCII order, good until the year 8900) + 12
 * random characters (~71 bits). Time first, as UUIDv7 and ULID do: the indexes keyed by task id (the id's
 * own, task_events by task) then grow at their right edge, so a commit of a burst's submissions dirties a
 * page or two of each instead of one random page per task — on sqld every dirty page is written twice (WAL
 * and its replication log). An id still says nothing a key holder could use: tasks are found by key.
 */
export function newTaskId(now = Date.now()): string {
  let time = "";
  for (let n = Math.max(0, Math.floor(now)), i = 0; i < 8; i++, n = Math.floor(n / 62)) time = SORTABLE[n % 62] + time;
  return `t_${time}${randomToken("x").slice(2, 14)}`;
}

/** A stable digest of a submission, so a replayed Idempotency-Key with a different body is refused. */
function requestHash(s: TaskSubmission): string {
  return sha256Hex(JSON.stringify(s));
}

export class TaskStore {
  constructor(private readonly db: Client, private readonly box: SecretBox) {}

  /** The submissions asked for together, as one statement (see `insertSubmissions`). */
  private readonly submissions = new TurnBatch<Submitting, Outcome>(
    (items) => this.insertSubmissions(items),
    100,
    SUBMISSIONS_FILL_MS,
  );

  /**
   * The `dispatched → running` moves asked for together, as one statement (see `markRunning`). They ride with the
   * next submissions statement while submissions are coming in: a burst's moves (its agents' answers) and the
   * next burst's submissions then cost the database one request and one commit instead of two.
   */
  private readonly runningMoves = new TurnBatch<RunningMove, boolean>(
    (moves) => this.moveToRunning(moves),
    100,
    0,
    { with: this.submissions, waitMs: RUNNING_MOVES_RIDE_MS, activeMs: SUBMISSIONS_ACTIVE_MS },
  );

  /**
   * `dispatched → running` (the agent took the task), with its message and run deadline: a compare-and-set
   * like `transition`, true exactly when this call made the move. The moves asked for while the last such
   * statement was being written go out together as the next one (edge/db/turn-batch.ts): in a burst the
   * agents' answers arrive together, and one UPDATE of twenty tasks costs the database server one preparation
   * instead of twenty.
   */
  markRunning(id: string, move: Omit<RunningMove, "id">): Promise<boolean> {
    return this.runningMoves.call({ id, ...move });
  }

  private async moveToRunning(moves: RunningMove[]): Promise<boolean[]> {
    // A task asked for twice in one list moves once; as with two CAS in a row, only the first call made it.
    const first = new Map<string, number>();
    moves.forEach((m, i) => first.has(m.id) || first.set(m.id, i));
    const unique = [...first.keys()].map((id) => moves[first.get(id)!]!);
    const [update] = await this.db.batch([{
      // The status event comes from the row's trigger (migration 0051), one per moved task.
      sql: RUNNING_MOVES_SQL,
      args: [JSON.stringify(unique.map((m) => [m.id, m.now, m.deadline.at, m.deadline.timer, m.message]))],
    }], "write");
    const moved = new Set(update!.rows.map((r) => String(r.id)));
    return moves.map((m, i) => first.get(m.id) === i && moved.has(m.id));
  }

  /** The plain repo credential of a task record, for its dispatch. */
  async openCredential(sealed: string): Promise<string> {
    return await this.box.open(sealed);
  }

  /**
   * Insert a queued task, or return the one an earlier request with the same Idempotency-Key made. With
   * `dispatch`, the insert itself puts the new task on a ready node of its key that has a free slot (its
   * triggers keep the slot count, the events and the attempt's inference token) and reads that node back, so a
   * submission on a warm node costs one statement up to the agent call — and the submissions that arrive while
   * the last ones are written share that statement (`insertSubmissions`). The new task's record is built from
   * what was inserted and what the statement decided (its seq and node), so nothing is read again.
   */
  async submit(
    keyId: string,
    s: TaskSubmission,
    idempotencyKey: string | null,
    deadline: { at: number; timer: string },
    now = Date.now(),
    dispatch?: SubmitDispatch,
  ): Promise<{ task: TaskRecord; created: boolean; node: NodeRow | null }> {
    const hash = requestHash(s);
    const credential = s.repo?.credential === undefined ? null : await this.box.seal(s.repo.credential);
    const row: Row = {
      id: dispatch?.taskId ?? newTaskId(now),
      key_id: keyId,
      idempotency_key: idempotencyKey,
      request_hash: hash,
      prompt: s.prompt,
      repo_url: s.repo?.url ?? null,
      repo_branch: s.repo?.branch ?? null,
      repo_credential: credential,
      repo_push: s.repo?.push ? JSON.stringify(s.repo.push) : null,
      agent: JSON.stringify(s.agent),
      model: s.model ?? null,
      labels: JSON.stringify(s.labels),
      created_at: now,
      updated_at: now,
      status_at: now,
    };
    const inserted = dispatch
      ? unwrap(await this.submissions.call({ row, queued: deadline, dispatch }))
      : await this.insertQueued(row, deadline);
    if (inserted) return { task: taskFromRow(inserted.row), created: true, node: inserted.node };
    const r = await this.db.execute({
      sql: "SELECT * FROM tasks WHERE key_id = ? AND idempotency_key = ?",
      args: [keyId, idempotencyKey],
    });
    const existing = r.rows[0] as Row | undefined;
    if (!existing) throw new Error("idempotent insert found neither a new nor an existing task");
    if (existing.request_hash !== hash) {
      throw new HttpError(409, "Idempotency-Key was already used with a different request body", {
        code: "idempotency_conflict",
      });
    }
    return { task: taskFromRow(existing), created: false, node: null };
  }

  /** A submission without a dispatch: queued, its event from the insert trigger. Null when the key was used. */
  private async insertQueued(row: Row, deadline: { at: number; timer: string }): Promise<Inserted | null> {
    const [r] = await this.db.batch([{
      sql: `INSERT INTO tasks (${SUBMITTED_COLUMNS.join(", ")}, status, deadline_at, deadline_timer, status_message)
        VALUES (${SUBMITTED_COLUMNS.map(() => "?").join(", ")}, 'queued', ?, ?, ?)
        ON CONFLICT (key_id, idempotency_key) DO NOTHING
        RETURNING *`,
      args: [...SUBMITTED_COLUMNS.map((c) => row[c] as InValue), deadline.at, deadline.timer, QUEUED_MESSAGE],
    }], "write");
    const inserted = r!.rows[0] as Row | undefined;
    return inserted ? { row: inserted, node: null } : null;
  }

  /**
   * Submissions with their dispatch, many in one statement: the database server prepares and parses a statement
   * each time it runs one (a submission's insert, its three triggers and its RETURNING were most of sqld's CPU
   * per submission), so a burst's submissions gathered into one `INSERT … SELECT` cost it one preparation.
   *
   * Each task goes to the free slots of its key's ready nodes in submission order, oldest node first: the k-th
   * task of a key in the statement takes the first node whose free slots, summed over the nodes before it and
   * itself, reach k; beyond them it stays queued (and is placed as any queued task is). The free slots are read
   * once, before the first row is inserted: the rows' triggers count the slots they take as the rows go in, and
   * a count read again per row would give those slots away twice (a CTE with a window function is computed
   * whole anyway; `MATERIALIZED` says so, whatever the planner of the day prefers). It runs inside the write
   * transaction, so no other writer can take a slot in between. A row whose Idempotency-Key was already used is
   * not inserted (its caller reads the task that was); its place in the order may leave a slot free for this
   * statement, which placement then fills: `inserted` is null for such a row.
   */
  private async insertSubmissions(items: Submitting[]): Promise<Outcome[]> {
    let rows: Row[];
    try {
      rows = (await this.db.batch([submissionsStatement(items)], "write"))[0]!.rows as unknown as Row[];
    } catch (error) {
      // A statement SQLite refused changed nothing: each submission again alone, so only the faulty one fails.
      // Any other failure (sqld unreachable, an answer lost) may have committed: every caller gets the error.
      if (items.length === 1 || !isStatementError(error)) {
        return items.map(() => ({ error }));
      }
      const alone: Outcome[] = [];
      for (const item of items) alone.push((await this.insertSubmissions([item]))[0]!);
      return alone;
    }
    const back = new Map(rows.map((r) => [String(r.id), r]));
    return items.map(({ row, queued, dispatch }) => {
      const r = back.get(String(row.id));
      if (!r) return { inserted: null };
      const nodeId = str(r.node_id);
      return {
        inserted: {
          row: {
            ...row,
            ...INSERT_DEFAULTS,
            seq: r.seq,
            node_id: nodeId,
            status: nodeId ? "dispatched" : "queued",
            deadline_at: nodeId ? dispatch.deadline.at : queued.at,
            deadline_timer: nodeId ? dispatch.deadline.timer : queued.timer,
            status_message: nodeId ? dispatchingMessage(nodeId) : QUEUED_MESSAGE,
            next_attempt_at: nodeId ? dispatch.nextAttemptAt : null,
          },
          node: nodeId && typeof r.dispatch_node === "string" ? JSON.parse(r.dispatch_node) as NodeRow : null,
        },
      };
    });
  }

  /**
   * Dispatch queued tasks of one key to its ready nodes' free slots, oldest first, in one write batch: per
   * task the CAS (its triggers write the event and file the token) and the node read. Tasks beyond the free slots stay queued
   * (their CAS finds no slot). Returns the node each dispatched task went to.
   */
  async dispatchQueued(
    keyId: string,
    tasks: { id: string; inferenceTokenHash: string }[],
    d: Omit<SubmitDispatch, "inferenceTokenHash">,
    now = Date.now(),
  ): Promise<Map<string, NodeRow>> {
    if (tasks.length === 0) return new Map();
    const results = await this.db.batch(
      tasks.flatMap((t) => dispatchQueuedTask(t.id, keyId, now, { ...d, inferenceTokenHash: t.inferenceTokenHash })),
      "write",
    );
    const placed = new Map<string, NodeRow>();
    tasks.forEach((t, i) => {
      const node = results[i * 2 + 1]!.rows[0] as NodeRow | undefined;
      if (node && results[i * 2]!.rowsAffected === 1) placed.set(t.id, node);
    });
    return placed;
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
      nodeId: str(row.node_id),
      status: String(row.status) as TaskStatus,
      cancelRequested: Number(row.cancel_requested) === 1,
    }]));
  }

  async list(
    q: { keyId: string | null; status: TaskStatus | null; cursor: number | null; limit: number },
  ): Promise<{ tasks: TaskRecord[]; nextCursor: string | null }> {
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
   * Compare-and-set: move the task from one of `from` to `to`; the transition's event is recorded by a trigger
   * in the same statement. Returns false when another actor moved it first, which is the normal race outcome.
   */
  async transition(id: string, from: readonly TaskStatus[], to: TaskStatus, opts: {
    message: string;
    error?: string | null;
    nodeId?: string | null;
    deadline?: { at: number; timer: string } | null;
    nextAttemptAt?: number | null;
    result?: TaskResult;
    /** What else must hold for the move, checked in the same statement. */
    when?: TransitionGuard;
    /** File this inference token hash with the move (the row's trigger does, only when the move happens). */
    inferenceTokenHash?: string;
    now?: number;
  }): Promise<boolean> {
    const now = opts.now ?? Date.now();
    const sets = [
      "status = ?",
      "status_at = ?",
      "updated_at = ?",
      "deadline_at = ?",
      "deadline_timer = ?",
      "status_message = ?",
    ];
    const args: InValue[] = [to, now, now, opts.deadline?.at ?? null, opts.deadline?.timer ?? null, opts.message];
    if (opts.nodeId !== undefined) (sets.push("node_id = ?"), args.push(opts.nodeId));
    if (opts.nextAttemptAt !== undefined) {
      (sets.push("next_attempt_at = ?", "attempts = 0"), args.push(opts.nextAttemptAt));
    }
    if (opts.error !== undefined) (sets.push("error = ?"), args.push(opts.error));
    if (opts.result !== undefined) (sets.push("result = ?"), args.push(JSON.stringify(opts.result)));
    // Filed in task_tokens by a trigger, so only when the move happens (migration 0034).
    if (opts.inferenceTokenHash !== undefined) {
      (sets.push("dispatch_token_hash = ?"), args.push(opts.inferenceTokenHash));
    }
    // An ended task never needs its repo credential again: every way a task ends comes through here.
    if (TERMINAL_STATUSES.includes(to)) sets.push("repo_credential = NULL");
    const whereArgs: InValue[] = [id, ...from];
    let extra = "";
    const when = opts.when ?? {};
    if (when.nodeHasSlot) {
      const n = when.nodeHasSlot;
      extra +=
        " AND EXISTS (SELECT 1 FROM nodes n WHERE n.id = ? AND n.status = ? AND n.owner_key_id = ? AND n.tasks_on_node < n.slots)";
      whereArgs.push(n.nodeId, n.status, n.keyId);
    }
    if (when.deadlineBy !== undefined) (extra += " AND deadline_at <= ?", whereArgs.push(when.deadlineBy));
    if (when.enteredBy !== undefined) (extra += " AND status_at <= ?", whereArgs.push(when.enteredBy));
    const [update] = await this.db.batch([
      {
        sql: `UPDATE tasks SET ${sets.join(", ")} WHERE id = ? AND status IN (${
          from.map(() => "?").join(",")
        })${extra}`,
        args: [...args, ...whereArgs],
      },
    ], "write");
    return update!.rowsAffected === 1;
  }

  /** Claim a retry: only the actor that moves `attempts` on from what it read gets to retry. */
  async claimRetry(
    id: string,
    status: TaskStatus,
    attempts: number,
    nextAttemptAt: number,
    now = Date.now(),
  ): Promise<boolean> {
    const r = await this.db.execute({
      sql:
        "UPDATE tasks SET attempts = attempts + 1, next_attempt_at = ?, updated_at = ? WHERE id = ? AND status = ? AND attempts = ? AND (next_attempt_at IS NULL OR next_attempt_at <= ?)",
      args: [nextAttemptAt, now, id, status, attempts, now],
    });
    return r.rowsAffected === 1;
  }

  async setNextAttempt(id: string, status: TaskStatus, at: number | null): Promise<void> {
    await this.db.execute({
      sql: "UPDATE tasks SET next_attempt_at = ? WHERE id = ? AND status = ?",
      args: [at, id, status],
    });
  }

  async requestCancel(id: string): Promise<void> {
    await this.db.execute({
      sql: "UPDATE tasks SET cancel_requested = 1, updated_at = ? WHERE id = ?",
      args: [Date.now(), id],
    });
  }

  /** A fresh task inference token (one per dispatch attempt); only its hash is stored. */
  async mintInferenceToken(taskId: string, hash: string): Promise<void> {
    await this.db.execute({
      sql: "INSERT INTO task_tokens (task_id, token_hash, created_at) VALUES (?, ?, ?)",
      args: [taskId, hash, Date.now()],
    });
  }

  /**
   * Append a batch of log lines as one row. Lines at or below the seq the edge already has are ignored, so a
   * retried batch is harmless (the agent sends in seq order). At most `maxLines` lines are kept per task;
   * the first batch past the cap writes one marker line instead, and later lines are acknowledged, not kept.
   * The row and the task's counters move in one batch guarded by the seq read, so two concurrent copies of a
   * batch cannot both land.
   */
  async appendLogs(
    task: Pick<TaskRecord, "id" | "logSeq" | "logLines">,
    events: TaskLogEvent[],
    maxLines: number,
  ): Promise<{ accepted: number; lastSeq: number }> {
    let { logSeq, logLines } = task;
    for (let attempt = 0;; attempt++) {
      const fresh = events.filter((e) => e.seq > logSeq).sort((a, b) => a.seq - b.seq);
      if (fresh.length === 0) return { accepted: 0, lastSeq: logSeq };
      const room = Math.max(0, maxLines - logLines);
      const kept = fresh.slice(0, room);
      const truncate = fresh.length > kept.length && logLines <= maxLines;
      const lastSeq = fresh[fresh.length - 1]!.seq;
      const guard = { sql: "(SELECT log_seq FROM tasks WHERE id = ?) = ?", args: [task.id, logSeq] };
      const rows: { at: number; stream: string | null; message: string; seq: number }[] = [];
      if (kept.length > 0) {
        rows.push({
          at: kept[0]!.at,
          stream: null,
          message: JSON.stringify(kept.map((e) => [e.seq, e.at, e.stream, e.message])),
          seq: kept[kept.length - 1]!.seq,
        });
      }
      if (truncate) {
        const first = fresh[kept.length]!;
        rows.push({ at: first.at, stream: "system", seq: first.seq, message: truncationMarker(maxLines) });
      }
      const results = await this.db.batch([
        ...rows.map((row) => ({
          sql:
            `INSERT INTO task_events (task_id, at, type, stream, message, agent_seq) SELECT ?, ?, ?, ?, ?, ? WHERE ${guard.sql}`,
          args: [
            task.id,
            row.at,
            row.stream === null ? "lines" : "log",
            row.stream,
            row.message,
            row.seq,
            ...guard.args,
          ],
        })),
        {
          sql: "UPDATE tasks SET log_seq = ?, log_lines = ? WHERE id = ? AND log_seq = ?",
          args: [lastSeq, truncate ? maxLines + 1 : logLines + kept.length, task.id, logSeq],
        },
      ], "write");
      if (results[results.length - 1]!.rowsAffected === 1) return { accepted: fresh.length, lastSeq };
      // Another copy of this batch (or a later one) got there first: read where the task's output stands.
      const r = await this.db.execute({ sql: "SELECT log_seq, log_lines FROM tasks WHERE id = ?", args: [task.id] });
      if (!r.rows[0] || attempt >= 5) return { accepted: 0, lastSeq: Number(r.rows[0]?.log_seq ?? logSeq) };
      logSeq = Number(r.rows[0].log_seq);
      logLines = Number(r.rows[0].log_lines);
    }
  }

  /** Events after the event id `afterId`, at most `limit`: status changes and log lines, in order. */
  async events(taskId: string, afterId: number, limit: number): Promise<TaskEventView[]> {
    // The row holding `afterId` may still have lines after it; every later row has at least one event.
    const r = await this.db.execute({
      sql:
        "SELECT id, at, type, status, stream, message FROM task_events WHERE task_id = ? AND id >= ? ORDER BY id LIMIT ?",
      args: [taskId, Math.floor(afterId / EVENT_ID_STRIDE), limit + 1],
    });
    const out: TaskEventView[] = [];
    for (const row of r.rows) {
      const base = Number(row.id) * EVENT_ID_STRIDE;
      if (row.type === "lines") {
        const lines = JSON.parse(String(row.message)) as [number, number, "stdout", string][];
        lines.forEach(([, at, stream, message], i) => {
          if (base + i > afterId) out.push({ id: base + i, at, type: "log", stream, message });
        });
      } else if (base > afterId) {
        const e: TaskEventView = {
          id: base,
          at: Number(row.at),
          type: row.type === "log" ? "log" : "status",
          message: String(row.message),
        };
        if (row.status !== null) e.status = String(row.status) as TaskStatus;
        if (row.stream !== null) e.stream = String(row.stream) as "stdout";
        out.push(e);
      }
      if (out.length >= limit) break;
    }
    return out.slice(0, limit);
  }

  /** Log rows of tasks that ended before `before`, at most `limit` rows; status events stay with the task. */
  async pruneLogs(before: number, limit: number): Promise<number> {
    const r = await this.db.execute({
      sql: `DELETE FROM task_events WHERE id IN (
              SELECT e.id FROM tasks t JOIN task_events e ON e.task_id = t.id
              WHERE t.status IN ${TERMINAL_SQL} AND t.updated_at < ? AND e.type <> 'status' LIMIT ?)`,
      args: [before, limit],
    });
    return r.rowsAffected;
  }

  /** Tasks that ended before `before`, at most `limit`, with their remaining events and inference tokens. */
  async pruneFinished(before: number, limit: number): Promise<number> {
    const chunk = `SELECT id FROM tasks WHERE status IN ${TERMINAL_SQL} AND updated_at < ? ORDER BY updated_at LIMIT ?`;
    const results = await this.db.batch([
      { sql: `DELETE FROM task_events WHERE task_id IN (${chunk})`, args: [before, limit] },
      { sql: `DELETE FROM task_tokens WHERE task_id IN (${chunk})`, args: [before, limit] },
      { sql: `DELETE FROM tasks WHERE id IN (${chunk})`, args: [before, limit] },
    ], "write");
    return results[2]!.rowsAffected;
  }

  async statusEvents(taskId: string): Promise<{ status: TaskStatus; at: number; message: string }[]> {
    const r = await this.db.execute({
      sql: "SELECT status, at, message FROM task_events WHERE task_id = ? AND type = 'status' ORDER BY id",
      args: [taskId],
    });
    return r.rows.map((row) => ({
      status: String(row.status) as TaskStatus,
      at: Number(row.at),
      message: String(row.message),
    }));
  }

  /** Non-terminal tasks whose runner deadline has passed. */
  async pastDeadline(now: number, limit = 500): Promise<TaskRecord[]> {
    const r = await this.db.execute({
      sql: `SELECT * FROM tasks WHERE status NOT IN ${TERMINAL_SQL} AND deadline_at <= ? LIMIT ?`,
      args: [now, limit],
    });
    return r.rows.map((row) => taskFromRow(row as Row));
  }

  async inStatus(
    statuses: readonly TaskStatus[],
    opts: { nodeId?: string; keyId?: string; retryDue?: number; enteredBefore?: number; limit?: number } = {},
  ): Promise<TaskRecord[]> {
    const where = [`status IN (${statuses.map(() => "?").join(",")})`];
    const args: InValue[] = [...statuses];
    if (opts.nodeId !== undefined) (where.push("node_id = ?"), args.push(opts.nodeId));
    if (opts.keyId !== undefined) (where.push("key_id = ?"), args.push(opts.keyId));
    if (opts.retryDue !== undefined) {
      (where.push("(next_attempt_at IS NULL OR next_attempt_at <= ?)"), args.push(opts.retryDue));
    }
    if (opts.enteredBefore !== undefined) (where.push("status_at <= ?"), args.push(opts.enteredBefore));
    args.push(opts.limit ?? 1000);
    const r = await this.db.execute({
      sql: `SELECT * FROM tasks WHERE ${where.join(" AND ")} ORDER BY seq LIMIT ?`,
      args,
    });
    return r.rows.map((row) => taskFromRow(row as Row));
  }
}

/** The visible line that says the edge stopped keeping a task's output, and where the rest is. */
export function truncationMarker(maxLines: number): string {
  return `[sam] output truncated: the edge keeps the first ${maxLines} lines of a task (SAM_TASK_LOG_MAX_LINES); ` +
    "the full output stays in the node's event log (GET /api/nodes/<node>/events, or its events export)";
}

/**
 * The statements that dispatch a queued task: the CAS to `dispatched` on the oldest ready, fresh node of the
 * key with a free slot (the capacity check, the slot count and the status event, kept by triggers, move in
 * the same statement, as does the inference token's filing: migration 0034), then that node's row. A submission does the same in its insert (`submit`).
 */
function dispatchQueuedTask(
  id: string,
  keyId: string,
  now: number,
  d: SubmitDispatch,
): { sql: string; args: InValue[] }[] {
  return [
    {
      sql: `UPDATE tasks SET status = 'dispatched', status_at = ?, updated_at = ?, deadline_at = ?, deadline_timer = ?,
              node_id = slot.id, next_attempt_at = ?, attempts = 0, status_message = 'dispatching to node ' || slot.id,
              dispatch_token_hash = ?
            FROM (${FREE_SLOT}) AS slot
            WHERE tasks.id = ? AND tasks.status = 'queued'`,
      args: [
        now,
        now,
        d.deadline.at,
        d.deadline.timer,
        d.nextAttemptAt,
        d.inferenceTokenHash,
        keyId,
        d.heartbeatAfter,
        id,
      ],
    },
    nodeForDispatch(id),
  ];
}

/** What a submission inserts as given (every other column is decided by the statement or is its default). */
const SUBMITTED_COLUMNS = [
  "id",
  "key_id",
  "idempotency_key",
  "request_hash",
  "prompt",
  "repo_url",
  "repo_branch",
  "repo_credential",
  "repo_push",
  "agent",
  "model",
  "labels",
  "created_at",
  "updated_at",
  "status_at",
] as const;

/** The defaults of the columns a submission leaves alone, as the table declares them (migrations). */
const INSERT_DEFAULTS = {
  attempts: 0,
  cancel_requested: 0,
  result: null,
  error: null,
  log_seq: -1,
  log_lines: 0,
} satisfies Row;

/**
 * How long the next submissions statement may wait for as many submissions as the last one carried. A
 * statement's fixed cost on the database server (its preparation, its commit's pages, the request) is most of
 * what a submission costs it, and under a steady load the last statement's callers come back within a few
 * milliseconds with their next submissions: waiting for them makes one statement of what would be two halves.
 * A lone submission after a burst waits this long at most.
 */
const SUBMISSIONS_FILL_MS = 5;
/**
 * How long a running move waits at most for the next submissions statement to ride with (see `runningMoves`):
 * one statement in flight and the next one's fill time.
 */
const RUNNING_MOVES_RIDE_MS = 10;
/**
 * Submissions count as coming in while one started within this long: under load a burst's agents answer between
 * two submissions statements (≈ 15 ms apart with two edges on one sqld), so a shorter window let half of the
 * moves go alone; with none coming, a move waits `RUNNING_MOVES_RIDE_MS` for nothing.
 */
const SUBMISSIONS_ACTIVE_MS = 100;

type Submitting = { row: Row; queued: { at: number; timer: string }; dispatch: SubmitDispatch };
type Inserted = { row: Row; node: NodeRow | null };
/** One submission's part of a shared statement: its row (null: the Idempotency-Key was used), or its own error. */
type Outcome = { inserted: Inserted | null } | { error: unknown };
const unwrap = (o: Outcome): Inserted | null => {
  if ("error" in o) throw o.error;
  return o.inserted;
};

/**
 * The statement of `moveToRunning`. The moves travel as one JSON array of `[id, at, deadline at, deadline timer,
 * message]` (one parameter), so its text is the same for any number of them: as many `VALUES` rows it grew by
 * eleven tokens a move, and sqld parsed and prepared 16 moves ≈ 0.2 ms slower (sqld caches no statement). The
 * unary `+` keeps the status index out of the plan: each move finds its task by id, where SQLite would otherwise
 * walk every dispatched task and scan the array for each.
 */
export const RUNNING_MOVES_SQL = `UPDATE tasks SET status = 'running', status_at = m.value ->> 1,
    updated_at = m.value ->> 1, deadline_at = m.value ->> 2, deadline_timer = m.value ->> 3,
    status_message = m.value ->> 4
  FROM json_each(?) AS m WHERE tasks.id = m.value ->> 0 AND +tasks.status = 'dispatched'
  RETURNING id`;

/** Per submission: what it inserts, then what either outcome (queued, dispatched) sets. */
const SUBMISSION_VALUES = [
  ...SUBMITTED_COLUMNS,
  "queued_deadline_at",
  "queued_deadline_timer",
  "dispatched_deadline_at",
  "dispatched_deadline_timer",
  "next_attempt_at",
  "token_hash",
];

/**
 * The statement of `insertSubmissions`. The submissions travel as one JSON array of rows (one parameter, read by
 * `json_each`), so the statement's text — and what the server parses and prepares — is the same for one
 * submission or a hundred; its array index is the submission's order.
 */
function submissionsStatement(items: Submitting[]): { sql: string; args: InValue[] } {
  const ifSlot = (dispatched: string, queued: string) =>
    `CASE WHEN x.slot IS NULL THEN ${queued} ELSE ${dispatched} END`;
  return {
    sql: `WITH v AS (SELECT j.key AS ord, ${
      SUBMISSION_VALUES.map((c, i) => `j.value ->> ${i} AS ${c}`).join(", ")
    } FROM json_each(?1) AS j),
      ranked AS (SELECT v.*, row_number() OVER (PARTITION BY v.key_id ORDER BY v.ord) AS place FROM v),
      free AS MATERIALIZED (
        SELECT n.id, n.owner_key_id AS key_id,
            SUM(n.slots - n.tasks_on_node) OVER (PARTITION BY n.owner_key_id ORDER BY n.created_at, n.id) AS upto
          FROM nodes n
          WHERE n.status = 'ready' AND n.owner_key_id IN (SELECT value FROM json_each(?2)) AND n.tasks_on_node < n.slots
            AND COALESCE(n.last_heartbeat_at, n.ready_at) > ?3)
      INSERT INTO tasks (${SUBMITTED_COLUMNS.join(", ")}, status, deadline_at, deadline_timer, status_message,
          node_id, next_attempt_at, dispatch_token_hash)
        SELECT ${SUBMITTED_COLUMNS.map((c) => `x.${c}`).join(", ")},
            ${ifSlot("'dispatched'", "'queued'")},
            ${ifSlot("x.dispatched_deadline_at", "x.queued_deadline_at")},
            ${ifSlot("x.dispatched_deadline_timer", "x.queued_deadline_timer")},
            ${ifSlot("'dispatching to node ' || x.slot", `'${QUEUED_MESSAGE}'`)},
            x.slot,
            ${ifSlot("x.next_attempt_at", "NULL")},
            ${ifSlot("x.token_hash", "NULL")}
          FROM (SELECT ranked.*, (SELECT f.id FROM free f WHERE f.key_id = ranked.key_id AND f.upto >= ranked.place
            ORDER BY f.upto LIMIT 1) AS slot FROM ranked) AS x
          WHERE true
          ORDER BY x.ord
        ON CONFLICT (key_id, idempotency_key) DO NOTHING
        RETURNING id, seq, node_id, (${NODE_FOR_DISPATCH_JSON}) AS dispatch_node`,
    args: [
      JSON.stringify(items.map(({ row, queued, dispatch }) => [
        ...SUBMITTED_COLUMNS.map((c) => row[c]),
        queued.at,
        queued.timer,
        dispatch.deadline.at,
        dispatch.deadline.timer,
        dispatch.nextAttemptAt,
        dispatch.inferenceTokenHash,
      ])),
      JSON.stringify([...new Set(items.map((i) => i.row.key_id))]),
      // The strictest of the submissions' freshness bounds (they were taken milliseconds apart).
      Math.max(...items.map((i) => i.dispatch.heartbeatAfter)),
    ],
  };
}

/** The key's oldest ready node with a free slot and a fresh heartbeat (parameters: key id, heartbeat after). */
const FREE_SLOT =
  `SELECT n.id FROM nodes n WHERE n.status = 'ready' AND n.owner_key_id = ? AND n.tasks_on_node < n.slots
  AND COALESCE(n.last_heartbeat_at, n.ready_at) > ? ORDER BY n.created_at LIMIT 1`;

/** Of the node a task was dispatched to, only what a dispatch needs (address, credentials), not its timeline. */
const NODE_FOR_DISPATCH = [
  "id",
  "status",
  "status_at",
  "provider",
  "owner_key_id",
  "agent_token",
  "slots",
  "created_at",
  "agent_url",
  "agent_tls_cert",
  // Whether its agent takes several dispatches in one call (edge/runner/dispatch-batch.ts).
  "capabilities",
];

/** The node a task was just dispatched to, read in the batch that dispatched it. */
function nodeForDispatch(taskId: string): { sql: string; args: InValue[] } {
  return {
    sql: `SELECT ${NODE_FOR_DISPATCH.map((c) => `n.${c}`).join(", ")}
          FROM tasks t JOIN nodes n ON n.id = t.node_id WHERE t.id = ? AND t.status = 'dispatched'`,
    args: [taskId],
  };
}

/**
 * The same, as one JSON value in the RETURNING clause of the insert that dispatched the task (a subquery may
 * read other tables there), so a submission needs no statement of its own to read it.
 */
const NODE_FOR_DISPATCH_JSON = `SELECT json_object(${
  NODE_FOR_DISPATCH.map((c) => `'${c}', n.${c}`).join(", ")
}) FROM nodes n WHERE n.id = tasks.node_id`;
