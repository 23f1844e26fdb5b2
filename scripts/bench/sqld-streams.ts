/**
 * What a new Hrana stream costs sqld: the same small write batch (BEGIN, one upsert, COMMIT) sent N times by
 * `@libsql/client`'s HTTP client, which opens a stream (an SQLite connection on the server, with the schema
 * loaded) for every request, and by the edge's WriteStream, which keeps one (edge/db/write-stream.ts). Against a
 * real sqld holding the edge's own schema (its migrations), interleaved rounds, medians. Reports sqld's CPU
 * (user + system from /proc) and the wall time per batch.
 *   node_modules/.bin/bun scripts/bench/sqld-streams.ts [--batches 2000] [--rounds 4]
 */
import { createClient } from "@libsql/client/web";
import { openDatabase } from "../../edge/db/client.ts";
import { migrate } from "../../edge/db/migrate.ts";
import { MIGRATIONS } from "../../edge/db/migrations.ts";
import { WriteStream } from "../../edge/db/write-stream.ts";
import { startSqld } from "../../edge/testing/sqld.ts";
import { cpuMicros, flag, median } from "./edge-stats.ts";

const BATCHES = Number(flag("batches", "2000"));
const ROUNDS = Number(flag("rounds", "4"));

const sqld = await startSqld();
const setup = await openDatabase(sqld.url, null);
await migrate(setup, MIGRATIONS);
await setup.execute("CREATE TABLE bench_kv (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)");
setup.close();

const batch = () => [{ sql: "INSERT OR REPLACE INTO bench_kv (k, v) VALUES (1, ?)", args: [Date.now()] }];
type Target = { batch(stmts: ReturnType<typeof batch>, mode: "write"): Promise<unknown>; close(): void };
const targets: Record<string, () => Target> = {
  "a stream per request (@libsql/client)": () => createClient({ url: sqld.url }),
  "one stream (WriteStream)": () => new WriteStream(sqld.url, undefined, fetch),
};
const results = new Map<string, { cpu: number[]; wall: number[] }>();
for (let round = 0; round < ROUNDS; round++) {
  const names = Object.keys(targets);
  for (const name of round % 2 ? names.reverse() : names) {
    const target = targets[name]!();
    await target.batch(batch(), "write"); // connect and negotiate the protocol version outside the measure
    const cpu0 = cpuMicros(sqld.pid);
    const t0 = performance.now();
    for (let i = 0; i < BATCHES; i++) await target.batch(batch(), "write");
    const wall = (performance.now() - t0) / BATCHES;
    const cpu = (cpuMicros(sqld.pid) - cpu0) / 1000 / BATCHES;
    target.close();
    const r = results.get(name) ?? { cpu: [], wall: [] };
    r.cpu.push(cpu);
    r.wall.push(wall);
    results.set(name, r);
  }
}
await sqld.stop();

const [perRequest, one] = [...results.values()];
console.log(`${BATCHES} write batches × ${ROUNDS} interleaved rounds against one sqld (the edge's schema), medians`);
console.log("| client | sqld CPU ms/batch | wall ms/batch |");
console.log("| --- | ---: | ---: |");
for (const [name, r] of results) {
  console.log(`| ${name} | ${median(r.cpu).toFixed(3)} | ${median(r.wall).toFixed(3)} |`);
}
console.log(
  `one stream ÷ a stream per request: CPU ${(median(one!.cpu) / median(perRequest!.cpu)).toFixed(2)}×, wall ${
    (median(one!.wall) / median(perRequest!.wall)).toFixed(2)
  }×`,
);
