/**
 * `POST /api/tasks` throughput at concurrency 32 (target ≥ 1,500 req/s on the `file:` database), with
 * p50/p99, for this tree and a baseline commit side by side in one run, under Bun and under Deno (the
 * production runtime), on `file:` and on a real sqld. The edge runs as its own process
 * (scripts/bench/edge-server.ts), its node is a local agent double process that holds every task, and the
 * load comes from this process (Bun `fetch`, keep-alive). Placement and dispatch run during the measurement;
 * "drained" is when the last measured task reached the node (running), so moving work off the request's
 * path cannot hide it. Medians over the rounds; runs are interleaved so machine load hits both alike.
 *   node_modules/.bin/bun scripts/bench/edge-submit.ts [--requests 3000] [--concurrency 32] [--rounds 3]
 *     [--runtimes bun,deno] [--dbs file,sqld] [--baseline <git ref>]
 */
import { createClient } from "@libsql/client";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSqld } from "../../edge/testing/sqld.ts";
import { exportBaseline } from "./baseline.ts";
import { cpuMicros, flag, median, summary } from "./edge-stats.ts";

const root = join(import.meta.dir, "..", "..");
const REQUESTS = Number(flag("requests", "3000"));
const CONCURRENCY = Number(flag("concurrency", "32"));
const ROUNDS = Number(flag("rounds", "3"));
const WARMUP = 300;
const RUNTIMES = flag("runtimes", "bun,deno").split(",") as ("bun" | "deno")[];
const DBS = flag("dbs", "file,sqld").split(",") as ("file" | "sqld")[];
// The edge before the per-node count, dispatch batch and group commit.
const BASELINE = flag("baseline", "898a341");
const BENCH_SECRET_KEY = "00".repeat(32);
const ADMIN = "admin-token-for-the-bench-0123456789";

type Run = { reqPerSec: number; p50: number; p99: number; errors: number; drainedPerSec: number; cpuUsPerTask: number };

let stderrTail = "";

async function startEdge(
  runtime: "bun" | "deno",
  code: string,
  env: Record<string, string>,
): Promise<{ url: string; child: ChildProcess }> {
  const bin = join(root, "node_modules", ".bin", runtime);
  const args = runtime === "deno"
    ? ["run", "-A", "scripts/bench/edge-server.ts", code]
    : ["scripts/bench/edge-server.ts", code];
  // The edge's stderr is kept, not shown: an overloaded baseline logs every timed-out request.
  const child = spawn(bin, args, { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  child.stderr!.on("data", (chunk: Buffer) => {
    stderrTail = (stderrTail + chunk.toString()).slice(-600);
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once("exit", (code) => reject(new Error(`edge exited (${code}) before listening`)));
  });
  return { url, child };
}

async function stopEdge(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
  if (child.exitCode === null) child.kill("SIGKILL");
}

async function poll<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await check();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function load(url: string, key: string, n: number, latencies: number[] | null): Promise<number> {
  const body = JSON.stringify({ prompt: "bench", agent: { type: "command", command: "true" } });
  const headers = { Authorization: `Bearer ${key}`, "Content-Type": "application/json" };
  let next = 0;
  let errors = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < n) {
      next++;
      const t0 = performance.now();
      const res = await fetch(`${url}/api/tasks`, { method: "POST", headers, body });
      await res.arrayBuffer();
      if (res.status !== 201) errors++;
      latencies?.push(performance.now() - t0);
    }
  }));
  return errors;
}

async function runOnce(runtime: "bun" | "deno", db: "file" | "sqld", code: string): Promise<Run> {
  const dataDir = mkdtempSync(join(tmpdir(), "sam-bench-edge-"));
  const sqld = db === "sqld" ? await startSqld() : null;
  const databaseUrl = sqld?.url ?? `file:${dataDir}/sam.db`;
  let edge: { url: string; child: ChildProcess } | null = null;
  try {
    edge = await startEdge(runtime, code, {
      SAM_DATA_DIR: dataDir,
      SAM_ADMIN_TOKEN: ADMIN,
      // The bench is one key sending thousands a minute: above the default per-key limit, by design.
      SAM_RATE_LIMIT_RPM: "1000000",
      // Edges sharing one database must share the key that seals agent tokens and credentials in it.
      SAM_SECRET_KEY: BENCH_SECRET_KEY,
      SAM_DATABASE_URL: databaseUrl,
      SAM_AGENT_READY_TIMEOUT: "2m",
    });
    const admin = { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" };
    const key = await (await fetch(`${edge.url}/api/keys`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ name: "bench", rateLimitPerMinute: 1_000_000 }),
    })).json() as { id: string; key: string };
    const node = await (await fetch(`${edge.url}/api/nodes`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ ownerKeyId: key.id }),
    })).json() as { id: string };
    await poll("node ready", async () => {
      const view = await (await fetch(`${edge!.url}/api/nodes/${node.id}`, { headers: admin })).json() as {
        status: string;
      };
      return view.status === "ready" ? true : undefined;
    }, 90_000);
    const counter = createClient({ url: databaseUrl });
    const running = async () =>
      Number((await counter.execute("SELECT COUNT(*) AS n FROM tasks WHERE status = 'running'")).rows[0]!.n);
    try {
      await load(edge.url, key.key, WARMUP, null); // JIT and caches; not measured
      await poll("warm-up dispatched", async () => ((await running()) >= WARMUP ? true : undefined), 120_000);
      const latencies: number[] = [];
      const cpuBefore = cpuMicros(edge.child.pid!);
      const started = performance.now();
      const errors = await load(edge.url, key.key, REQUESTS, latencies);
      const seconds = (performance.now() - started) / 1000;
      await poll(
        "all dispatched",
        async () => ((await running()) >= WARMUP + REQUESTS - errors ? true : undefined),
        180_000,
      );
      const drained = (performance.now() - started) / 1000;
      const cpuUsPerTask = (cpuMicros(edge.child.pid!) - cpuBefore) / REQUESTS;
      const s = summary(latencies);
      return {
        reqPerSec: REQUESTS / seconds,
        p50: s.p50,
        p99: s.p99,
        errors,
        drainedPerSec: REQUESTS / drained,
        cpuUsPerTask,
      };
    } finally {
      counter.close();
    }
  } finally {
    if (edge) await stopEdge(edge.child);
    await sqld?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const baselineDir = exportBaseline(root, BASELINE);
const head = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root }).stdout.toString().trim();
console.log(
  `POST /api/tasks: ${REQUESTS} requests at concurrency ${CONCURRENCY} (after ${WARMUP} warm-up), ${ROUNDS} rounds, medians; baseline ${BASELINE} vs this tree (${head})`,
);
const results = new Map<string, Run[]>();
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const runtime of RUNTIMES) {
      for (const db of DBS) {
        for (const [label, code] of [["baseline", baselineDir], ["this tree", root]] as const) {
          const id = `${runtime} ${db} ${label}`;
          stderrTail = "";
          const r = await runOnce(runtime, db, code).catch((err) => {
            const last = stderrTail.trim().split("\n").filter((l) => l.startsWith("sam")).pop();
            console.log(`  ${id}: failed: ${(err as Error).message}${last ? ` (edge: ${last})` : ""}`);
            return null;
          });
          if (!r) continue;
          console.log(
            `  round ${round + 1} ${id.padEnd(22)} ${r.reqPerSec.toFixed(0).padStart(5)} req/s  p50 ${
              r.p50.toFixed(1)
            } ms  p99 ${r.p99.toFixed(1)} ms  drained ${r.drainedPerSec.toFixed(0)}/s  edge CPU ${
              r.cpuUsPerTask.toFixed(0)
            } µs/task  errors ${r.errors}`,
          );
          results.set(id, [...(results.get(id) ?? []), r]);
        }
      }
    }
  }
} finally {
  rmSync(baselineDir, { recursive: true, force: true });
}

console.log(
  "\n| runtime | db | code | req/s | p50 ms | p99 ms | dispatched/s | edge CPU µs/task | errors | req/s vs baseline |",
);
console.log("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const runtime of RUNTIMES) {
  for (const db of DBS) {
    const base = results.get(`${runtime} ${db} baseline`);
    for (const label of ["baseline", "this tree"]) {
      const runs = results.get(`${runtime} ${db} ${label}`);
      if (!runs) continue;
      const m = (f: (r: Run) => number) => median(runs.map(f));
      const ratio = base ? `${(m((r) => r.reqPerSec) / median(base.map((r) => r.reqPerSec))).toFixed(2)}×` : "—";
      console.log(
        `| ${runtime} | ${db} | ${label} | ${m((r) => r.reqPerSec).toFixed(0)} | ${m((r) => r.p50).toFixed(1)} | ${
          m((r) => r.p99).toFixed(1)
        } | ${m((r) => r.drainedPerSec).toFixed(0)} | ${m((r) => r.cpuUsPerTask).toFixed(0)} | ${
          runs.reduce((n, r) => n + r.errors, 0)
        } | ${ratio} |`,
      );
    }
  }
}
