/**
 * The one place that picks a libSQL client by URL scheme. Deno Deploy loads no native addons, so remote
 * URLs go through `@libsql/client/web` and only `file:` loads the native client (imported lazily).
 */
import type { Client, InArgs, InStatement, ResultSet, TransactionMode } from "@libsql/client";
import { ensurePrivateDatabase } from "../auth/private-files.ts";
import { groupCommits } from "./group-commit.ts";
import { WriteStream } from "./write-stream.ts";
import { wrapClient } from "./wrap-client.ts";
import { REQUEST_TIMEOUTS } from "../../shared/timeouts.ts";

export type { Client } from "@libsql/client";

export async function openDatabase(url: string, authToken: string | null): Promise<Client> {
  if (url.startsWith("file:")) {
    const path = url.slice("file:".length).split("?")[0]!;
    if (path && path !== ":memory:") ensurePrivateDatabase(path);
    const { createClient } = await import("@libsql/client");
    (await import("./statement-cache.ts")).cachePreparedStatements();
    // One connection: the native client's calls are synchronous anyway, and per-connection pragmas would
    // otherwise hold only on whichever pooled connection ran them (the only interactive transaction, the
    // migrations', runs at start before anything else uses the client).
    const client = createClient({ url, concurrency: 1 });
    // WAL lets readers (SSE followers, exports) run beside the writer; the busy timeout rides out locks
    // another process holds. synchronous=NORMAL is SQLite's setting for WAL: a commit no longer waits for an
    // fsync (a power cut may lose the last commits, never the database's integrity) — ~250 µs → ~20 µs.
    await client.execute("PRAGMA journal_mode = WAL");
    await client.execute("PRAGMA synchronous = NORMAL");
    await client.execute("PRAGMA busy_timeout = 5000");
    return groupCommits(client);
  }
  const { createClient } = await import("@libsql/client/web");
  const remote = url.startsWith("libsql:") ? url.replace(/^libsql:/, "https:") : url;
  const reads = createClient({ url: remote, authToken: authToken ?? undefined, fetch: fetchWithTimeout });
  // Over WebSocket one connection carries every stream; there the writes share the reads' client.
  if (!/^https?:/.test(remote)) return groupCommits(remoteClient(reads, reads));
  // Over HTTP, writes keep one stream (one server connection) and ask for uncompressed answers.
  // The token as @libsql/client takes it: given apart, or as the URL's `authToken` parameter.
  const base = new URL(remote);
  const token = authToken ?? base.searchParams.get("authToken") ?? undefined;
  const writes = new WriteStream(`${base.origin}${base.pathname}`, token, uncompressed);
  return groupCommits(remoteClient(reads, writes));
}

/** A request to the database server that hangs fails instead of holding its caller forever. */
const REQUEST_TIMEOUT_MS = REQUEST_TIMEOUTS.databaseRequest.ms;

function fetchWithTimeout(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  return fetch(input, { ...init, signal: init?.signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
}

/**
 * The same, asking for the answer uncompressed. The runtime's fetch asks for gzip by default, so the server
 * deflates every answer and the edge inflates it: for the answers of writes — a few rows each (RETURNING),
 * nothing to save on a link inside one region — that was ≈ 7 % of sqld's CPU per submission and as much
 * throughput (docs/benchmarks.md § Scale-out). Reads, whose pages of log lines can be large, stay compressed.
 */
function uncompressed(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  // The Hrana client passes a Request (its Authorization and Content-Type on it) and no init: keep its headers.
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  headers.set("Accept-Encoding", "identity");
  return fetchWithTimeout(input, { ...init, headers });
}

/** How long a statement keeps retrying while the server reports the database locked. */
const BUSY_RETRY_MS = 5_000;

/** What the write path needs of a client: the remote client itself, or a WriteStream. */
type Writer = {
  execute(stmt: InStatement): Promise<ResultSet>;
  batch(stmts: Parameters<Client["batch"]>[0], mode?: TransactionMode): Promise<ResultSet[]>;
  close(): void;
};

/**
 * The remote client as the edge uses it: one write in flight per instance, SQLITE_BUSY retried, and writes over
 * HTTP on one long-lived stream that asks for uncompressed answers (write-stream.ts, `uncompressed`).
 *
 * Why one write at a time: sqld has no busy timeout over HTTP, and its lock waiters spin. With tens of
 * concurrent writers (a burst of submissions plus their placement and dispatch), its threads spin on the
 * write lock while the holder starves for CPU; on a loaded 2-core machine every request then hangs until
 * the 15 s request timeout (the two-instance test stalled for 55-60 s so). SQLite takes one writer at a
 * time anyway, so queueing writes here costs no throughput and leaves sqld at most one waiter per
 * instance. Reads are not queued.
 *
 * A statement or batch that failed with SQLITE_BUSY was rolled back whole, so retrying it with a short
 * backoff is safe; the queue is released during the backoff so reads and the other instance progress.
 */
function remoteClient(client: Client, writer: Writer): Client {
  const writes = new WriteQueue();
  const retry = async <T>(write: boolean, work: () => Promise<T>): Promise<T> => {
    const deadline = Date.now() + BUSY_RETRY_MS;
    for (let delay = 2;; delay = Math.min(delay * 2, 100)) {
      try {
        return await (write ? writes.run(work) : work());
      } catch (err) {
        if ((err as { code?: string }).code !== "SQLITE_BUSY" || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random())));
      }
    }
  };
  const over = (write: boolean): Writer => (write ? writer : client);
  return wrapClient(client, {
    execute: (stmtOrSql: InStatement, args?: InArgs) => {
      const stmt = typeof stmtOrSql === "string" && args !== undefined ? { sql: stmtOrSql, args } : stmtOrSql;
      const write = isWrite(stmt);
      return retry(write, () => over(write).execute(stmt));
    },
    batch: (...args: Parameters<Client["batch"]>) => {
      const write = args[1] !== "read";
      return retry(write, () => over(write).batch(...args));
    },
    close: () => {
      if (writer !== client) writer.close();
      client.close();
    },
  });
}

/** Only a plain SELECT is a read; anything else (INSERT … RETURNING, PRAGMA, WITH …) queues as a write. */
function isWrite(stmt: InStatement): boolean {
  const sql = typeof stmt === "string" ? stmt : stmt.sql;
  return !/^\s*SELECT\b/i.test(sql);
}

/** A FIFO of async work, one at a time. */
class WriteQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work);
    this.tail = result.catch(() => {});
    return result;
  }
}
