/**
 * Prepared statements kept per native connection. `@libsql/client` prepares every statement anew and asks
 * for its columns twice per call; under load that was ~40 % of the edge's CPU (prepare 24 %, columns 15 % in
 * a profile of `POST /api/tasks` at concurrency 32). SQL strings here are constants with `?` parameters, so
 * a small map per connection holds them all. Statements run synchronously in the driver, so one is never
 * used by two calls at once. SQLite re-prepares a cached statement itself after a schema change, but the
 * memoised column names would go stale, so schema statements (the migrations at start) clear the cache.
 *
 * The driver (`libsql`, pinned) has no statement cache option, so this wraps its `prepare` — the one place
 * the client creates statements — once per process, for the `file:` path only.
 */
import Database from "libsql";

const CACHE = Symbol("sam.preparedStatements");
/** Far more than the edge's distinct statements; a runaway of dynamic SQL only costs re-preparing. */
const MAX_STATEMENTS = 1_000;
const SCHEMA_CHANGE = /^\s*(CREATE|ALTER|DROP)\b/i;

type Statement = { columns(): unknown[]; safeIntegers(toggle?: boolean): Statement; raw(toggle?: boolean): Statement };
type Prepare = (this: { [CACHE]?: Map<string, Statement> }, sql: string, ...rest: unknown[]) => Statement;

let installed = false;

export function cachePreparedStatements(): void {
  if (installed) return;
  installed = true;
  const proto = Database.prototype as unknown as { prepare: Prepare };
  const prepare = proto.prepare;
  proto.prepare = function (sql, ...rest) {
    if (rest.length > 0) return prepare.call(this, sql, ...rest);
    const cache = (this[CACHE] ??= new Map());
    let stmt = cache.get(sql);
    if (!stmt) {
      // Schema statements are never cached, so a hit is never one; only a miss needs the check.
      if (SCHEMA_CHANGE.test(sql)) {
        cache.clear();
        return prepare.call(this, sql);
      }
      stmt = prepare.call(this, sql);
      rememberFixedAnswers(stmt);
      if (cache.size >= MAX_STATEMENTS) cache.clear();
      cache.set(sql, stmt);
    }
    return stmt;
  };
}

/**
 * The client asks a statement the same questions on every call: its columns (twice), `safeIntegers(true)`
 * and `raw(true)` — which, for a statement that returns no rows, throws a native error it then catches
 * (~3.4 µs under Deno per write statement). The answers are fixed for a prepared statement (whether it
 * returns rows never changes), so each native call is made once and its outcome replayed.
 */
function rememberFixedAnswers(stmt: Statement): void {
  const { columns, safeIntegers, raw } = stmt;
  let known: unknown[] | undefined;
  stmt.columns = function () {
    return (known ??= columns.call(this));
  };
  let integers: boolean | undefined;
  stmt.safeIntegers = function (toggle = true) {
    if (toggle !== integers) (safeIntegers.call(this, toggle), (integers = toggle));
    return this;
  };
  let rawMode: boolean | undefined;
  let notAReader: unknown;
  stmt.raw = function (toggle = true) {
    if (toggle === rawMode) return this;
    if (notAReader !== undefined) throw notAReader;
    try {
      raw.call(this, toggle);
    } catch (err) {
      notAReader = err;
      throw err;
    }
    rawMode = toggle;
    return this;
  };
}
