/**
 * What one write request to sqld costs the edge's own process (Deno, the production runtime), by the size of its
 * answer: the edge's HTTP write stream (edge/db/write-stream.ts, what the edge uses) beside a Hrana stream over
 * WebSocket (one connection, one stream, the same BEGIN / statement / COMMIT batch), interleaved in rounds,
 * requests one after another. Reports the Deno process's CPU (`process.cpuUsage`, all its threads) and the wall
 * time per request, medians of rounds. The statement inserts N rows and returns them; with `--wide` each row
 * also carries 1.3 KB, as a burst's rows carry their node (agent URL, certificate) in `RETURNING`.
 *   node_modules/.bin/bun scripts/bench/edge-db-requests.ts [--rows 1,4,14,28] [--requests 300] [--rounds 3] [--wide]
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { flag, median } from "./edge-stats.ts";

const ROWS = flag("rows", "1,4,14,28").split(",").map(Number);
const REQUESTS = Number(flag("requests", "300"));
const ROUNDS = Number(flag("rounds", "3"));
const WIDE = process.argv.includes("--wide");

type Figure = { cpuUs: number; wallUs: number };

/** Under Deno: the measurement itself, against the sqld at `url`; prints one JSON line of figures. */
async function measure(url: string): Promise<void> {
  const hrana = await import("@libsql/hrana-client");
  const { WriteStream } = await import("../../edge/db/write-stream.ts");
  const http = new WriteStream(url, undefined, (input, init) => fetch(input, init));
  await http.execute("CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, task TEXT, node TEXT, wide TEXT)");
  const ws = hrana.openWs(url.replace(/^http/, "ws"), undefined);
  const stream = ws.openStream();
  const wide = WIDE ? JSON.stringify({ cert: "x".repeat(1200), token: "y".repeat(60) }) : "";
  const sql =
    "INSERT INTO bench_rows (task, node, wide) SELECT j.value ->> 0, j.value ->> 1, ?2 FROM json_each(?1) AS j " +
    `RETURNING id, task, node${WIDE ? ", wide" : ""}`;
  const args = (rows: number) => [
    JSON.stringify(Array.from({ length: rows }, (_, i) => [`task_${i}_${Math.random()}`, "node_1"])),
    wide,
  ];
  const overWs = async (rows: number) => {
    const batch = stream.batch(false);
    const begin = batch.step();
    void begin.run("BEGIN IMMEDIATE");
    const stmt = new hrana.Stmt(sql);
    stmt.bindIndexes(args(rows));
    const result = batch.step().condition(hrana.BatchCond.ok(begin)).query(stmt);
    void batch.step().condition(hrana.BatchCond.ok(begin)).run("COMMIT");
    await batch.execute();
    if ((await result)?.rows.length !== rows) throw new Error("short answer over WebSocket");
  };
  const overHttp = async (rows: number) => {
    const [result] = await http.batch([{ sql, args: args(rows) }], "write");
    if (result!.rows.length !== rows) throw new Error("short answer over HTTP");
  };
  const cpu = () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };
  const figures: Record<string, Figure[]> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const rows of ROWS) {
      const targets = [["http", overHttp], ["ws", overWs]] as const;
      for (const [name, send] of round % 2 ? [...targets].reverse() : targets) {
        await send(rows); // connect outside the measure
        const cpu0 = cpu();
        const t0 = performance.now();
        for (let i = 0; i < REQUESTS; i++) await send(rows);
        (figures[`${name} ${rows}`] ??= []).push({
          cpuUs: (cpu() - cpu0) / REQUESTS,
          wallUs: ((performance.now() - t0) / REQUESTS) * 1000,
        });
      }
    }
  }
  http.close();
  ws.close();
  console.log(JSON.stringify(figures));
}

if (process.argv[2] === "--child") {
  await measure(process.argv[3]!);
} else {
  const { startSqld } = await import("../../edge/testing/sqld.ts");
  const root = join(import.meta.dirname!, "..", "..");
  const sqld = await startSqld();
  try {
    const child = spawnSync(
      join(root, "node_modules", ".bin", "deno"),
      ["run", "-A", "scripts/bench/edge-db-requests.ts", "--child", sqld.url, ...process.argv.slice(2)],
      { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
    );
    if (child.status !== 0) throw new Error(`the Deno side failed (${child.status})`);
    const figures = JSON.parse(child.stdout.trim().split("\n").at(-1)!) as Record<string, Figure[]>;
    console.log(
      `One write request to sqld from Deno, one after another: ${REQUESTS} requests × ${ROUNDS} rounds, medians${
        WIDE ? ", rows with 1.3 KB each" : ""
      }\n`,
    );
    console.log(
      "| rows in the answer | HTTP write stream: CPU µs / wall µs | WebSocket stream: CPU µs / wall µs | CPU ws ÷ http | wall ws ÷ http |",
    );
    console.log("| ---: | ---: | ---: | ---: | ---: |");
    for (const rows of ROWS) {
      const of = (name: string) => {
        const f = figures[`${name} ${rows}`]!;
        return { cpu: median(f.map((x) => x.cpuUs)), wall: median(f.map((x) => x.wallUs)) };
      };
      const http = of("http");
      const ws = of("ws");
      console.log(
        `| ${rows} | ${http.cpu.toFixed(0)} / ${http.wall.toFixed(0)} | ${ws.cpu.toFixed(0)} / ${
          ws.wall.toFixed(0)
        } | ${(ws.cpu / http.cpu).toFixed(2)}× | ${(ws.wall / http.wall).toFixed(2)}× |`,
      );
    }
  } finally {
    await sqld.stop();
  }
}
