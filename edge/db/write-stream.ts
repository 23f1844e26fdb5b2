/**
 * The edge's writes to a remote database (sqld, Turso) over one long-lived Hrana stream instead of a new one
 * per request. The server opens an SQLite connection for every new stream — it loads the schema (every table,
 * index and trigger) and starts with a cold page cache — which cost sqld ≈ 1 ms of CPU and the edge ≈ 1.1 ms
 * of waiting per request, a group commit's fixed price (docs/benchmarks.md § Scale-out). The edge writes one
 * request at a time anyway (client.ts), so one stream serves them all, its baton passed from each answer to
 * the next request.
 *
 * The server expires a stream after 10 s without a request; this one is closed after `IDLE_CLOSE_MS` without
 * one, and the next write opens another. A request the server refused because its stream had expired ran
 * nothing, so it is sent again once on a new stream. Any other failure leaves the stream closed (the next
 * write opens a new one) and its callers get the error: whether it ran is unknown, so it is not sent again
 * (group-commit.ts says why). The baton makes the stream safer than a stream per request here: a request the
 * runtime's HTTP client sends a second time after a dropped connection is refused, not run twice.
 *
 * Statements and batches behave as `@libsql/client`'s HTTP client runs them (a batch is one transaction of
 * BEGIN, its statements each conditioned on the last, COMMIT, and ROLLBACK if that did not happen); texts a
 * stream sees again are stored on it once and sent by id, as that client does within one batch.
 */
import * as hrana from "@libsql/hrana-client";
import {
  type InArgs,
  type InStatement,
  LibsqlBatchError,
  LibsqlError,
  type ResultSet,
  type TransactionMode,
} from "@libsql/client/web";
import { clearTimeout, setTimeout } from "node:timers";

/** Well below the server's 10 s, so an idle stream is closed by the edge before the server expires it. */
export const IDLE_CLOSE_MS = 5_000;
/** Stored SQL texts per stream (the server bounds them; a text over 5,000 characters is never stored). */
const SQL_CACHE = 30;
const MAX_STORED_SQL = 5_000;

/**
 * The server refused the request because its stream had expired: nothing ran (sqld answers 400 with code
 * STREAM_EXPIRED). Not retried: a baton the server does not know or has seen already (400, plain text). A
 * baton seen already means a request with it arrived, and the runtime's HTTP client may itself send a POST
 * again after a dropped connection, so the first may have run; an unknown baton (a restarted server) fails
 * that one write, as the restart would have anyway.
 */
function streamExpired(err: unknown): boolean {
  return err instanceof hrana.ResponseError && err.code === "STREAM_EXPIRED";
}

/** Errors as `@libsql/client` reports them: a `code` such as `SQLITE_CONSTRAINT` or `SERVER_ERROR`. */
function asLibsqlError(err: unknown): unknown {
  if (!(err instanceof hrana.ClientError)) return err;
  let code = "UNKNOWN";
  if (err instanceof hrana.ResponseError && err.code !== undefined) code = err.code;
  else if (err instanceof hrana.ClosedError && err.cause instanceof hrana.ResponseError && err.cause.code) {
    code = err.cause.code;
  } else if (err instanceof hrana.HttpServerError) code = "SERVER_ERROR";
  else if (err instanceof hrana.ProtoError) code = "HRANA_PROTO_ERROR";
  return new LibsqlError(err.message, code, undefined, undefined, err);
}

/** A statement as `@libsql/client` takes it in a batch: text, `{ sql, args }`, or `[sql, args]`. */
type BatchStatement = InStatement | [string, InArgs?];

function toHrana(stmt: BatchStatement): hrana.Stmt {
  const s = typeof stmt === "string"
    ? { sql: stmt, args: [] }
    : Array.isArray(stmt)
    ? { sql: stmt[0], args: stmt[1] }
    : stmt;
  const out = new hrana.Stmt(s.sql);
  if (Array.isArray(s.args)) out.bindIndexes(s.args);
  else for (const [name, value] of Object.entries(s.args ?? {})) out.bindName(name, value);
  return out;
}

function toResultSet(r: hrana.RowsResult): ResultSet {
  const columns = r.columnNames.map((c) => c ?? "");
  const columnTypes = r.columnDecltypes.map((c) => c ?? "");
  return {
    columns,
    columnTypes,
    rows: r.rows as unknown as ResultSet["rows"],
    rowsAffected: r.affectedRowCount,
    lastInsertRowid: r.lastInsertRowid,
    toJSON: () => ({ columns, columnTypes, rows: r.rows, rowsAffected: r.affectedRowCount }),
  };
}

const BEGIN: Record<TransactionMode, string> = {
  write: "BEGIN IMMEDIATE",
  read: "BEGIN TRANSACTION READONLY",
  deferred: "BEGIN DEFERRED",
};

export class WriteStream {
  private readonly client: hrana.HttpClient;
  private stream: hrana.HttpStream | null = null;
  /** This stream's stored SQL texts, least recently used first. */
  private sqls = new Map<string, hrana.Sql>();
  private idle: ReturnType<typeof setTimeout> | null = null;
  /** Streams opened so far (tests). */
  opened = 0;

  constructor(
    url: string,
    authToken: string | undefined,
    fetch: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>,
    private readonly idleCloseMs = IDLE_CLOSE_MS,
  ) {
    this.client = hrana.openHttp(url, authToken, fetch);
  }

  execute(stmt: InStatement): Promise<ResultSet> {
    return this.run(async (stream) => toResultSet(await stream.query(this.stored(stream, [toHrana(stmt)])[0]!)));
  }

  batch(stmts: BatchStatement[], mode: TransactionMode = "deferred"): Promise<ResultSet[]> {
    return this.run(async (stream) => {
      const version = await this.client.getVersion();
      const batch = stream.batch(false);
      const begin = batch.step();
      const began = begin.run(BEGIN[mode]);
      let last = begin;
      const results = this.stored(stream, stmts.map(toHrana)).map((stmt) => {
        const step = batch.step().condition(hrana.BatchCond.ok(last));
        if (version >= 3) step.condition(hrana.BatchCond.not(hrana.BatchCond.isAutocommit(batch)));
        last = step;
        return step.query(stmt);
      });
      const commit = batch.step().condition(hrana.BatchCond.ok(last));
      if (version >= 3) commit.condition(hrana.BatchCond.not(hrana.BatchCond.isAutocommit(batch)));
      const committed = commit.run("COMMIT");
      batch.step().condition(hrana.BatchCond.not(hrana.BatchCond.ok(commit))).run("ROLLBACK").catch(() => undefined);
      await batch.execute();
      await began;
      const out: ResultSet[] = [];
      for (let i = 0; i < results.length; i++) {
        let rows: hrana.RowsResult | undefined;
        try {
          rows = await results[i];
        } catch (err) {
          const e = asLibsqlError(err) as LibsqlError;
          throw e instanceof LibsqlError ? new LibsqlBatchError(e.message, i, e.code, undefined, undefined, e) : e;
        }
        if (rows === undefined) {
          throw new LibsqlBatchError(
            "Statement in a batch was not executed, probably because the transaction has been rolled back",
            i,
            "TRANSACTION_CLOSED",
          );
        }
        out.push(toResultSet(rows));
      }
      await committed;
      return out;
    });
  }

  close(): void {
    this.dropStream();
    this.client.close();
  }

  private async run<T>(work: (stream: hrana.HttpStream) => Promise<T>): Promise<T> {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    try {
      for (let attempt = 0;; attempt++) {
        const fresh = this.stream === null || this.stream.closed;
        if (fresh) this.openStream();
        try {
          return await work(this.stream!);
        } catch (err) {
          // Only a stream that was already open can have expired; its request then ran nothing.
          if (!fresh && attempt === 0 && streamExpired(err)) {
            this.dropStream();
            continue;
          }
          if (this.stream?.closed) this.dropStream();
          throw asLibsqlError(err);
        }
      }
    } finally {
      if (this.stream) {
        this.idle = setTimeout(() => this.dropStream(), this.idleCloseMs);
        this.idle.unref?.();
      }
    }
  }

  private openStream(): void {
    this.dropStream();
    this.stream = this.client.openStream();
    this.opened++;
  }

  private dropStream(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    // A graceful close sends the close request after anything still queued; the stored texts go with it.
    if (this.stream && !this.stream.closed) this.stream.closeGracefully();
    this.stream = null;
    this.sqls = new Map();
  }

  /** Statements with their texts stored on the stream (sent once, then by id), least recently used evicted. */
  private stored(stream: hrana.HttpStream, stmts: hrana.Stmt[]): hrana.Stmt[] {
    const used = new Set<hrana.Sql>();
    for (const stmt of stmts) {
      const text = stmt.sql;
      if (typeof text !== "string" || text.length >= MAX_STORED_SQL) continue;
      let sql = this.sqls.get(text);
      if (sql) {
        this.sqls.delete(text);
      } else {
        for (const [oldText, old] of this.sqls) {
          if (this.sqls.size < SQL_CACHE || used.has(old)) break;
          old.close();
          this.sqls.delete(oldText);
        }
        if (this.sqls.size >= SQL_CACHE) continue;
        sql = stream.storeSql(text);
      }
      this.sqls.set(text, sql);
      stmt.sql = sql;
      used.add(sql);
    }
    return stmts;
  }
}
