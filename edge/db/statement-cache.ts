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

type Statement = { columns(): unknown[] };
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
      // A prepared statement's result columns are fixed; the client asks for them twice per call.
      const columns = stmt.columns;
      let known: unknown[] | undefined;
      stmt.columns = function () {
        return (known ??= columns.call(this));
      };
      if (cache.size >= MAX_STATEMENTS) cache.clear();
      cache.set(sql, stmt);
    }
    return stmt;
  };
}
