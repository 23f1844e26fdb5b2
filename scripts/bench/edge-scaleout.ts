/**
 * Scale-out on one sqld: `POST /api/tasks` at concurrency 32 (or `--concurrency`) spread over 1, 2 and 3 edge
 * processes (Deno, the production runtime) sharing one real sqld (with `--db-latency`, behind a relay that holds
 * each chunk that long each way), for a baseline commit and this tree side by side in one run
 * (interleaved, so machine load hits both alike). Reports req/s, p50/p99, and sqld's CPU time per submission
 * (user + system from /proc/<sqld pid>/stat over the measured requests until the last of them runs on its
 * node: submission, placement, dispatch and the running transition all count), and per submission the CPU of
 * the edges, the agent double and the load generator and the edges' context switches (wake-ups, and preemptions
 * by another runnable thread: how crowded the cores are). Each edge is
 * scripts/bench/edge-server.ts; the one node is a local agent double process holding every task.
 *   node_modules/.bin/bun scripts/bench/edge-scaleout.ts [--requests 3000] [--rounds 1] [--edges 1,2,3]
 *     [--baseline 9c7512b] [--concurrency 32] [--db-latency MS]
 */
import { createClient } from "@libsql/client";
import { connect, createServer, type Server } from "node:net";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSqld } from "../../edge/testing/sqld.ts";
import { exportBaseline } from "./baseline.ts";
import { contextSwitches, cpuMicros, flag, median, summary } from "./edge-stats.ts";

const root = join(import.meta.dir, "..", "..");
const REQUESTS = Number(flag("requests", "3000"));
const ROUNDS = Number(flag("rounds", "1"));
const EDGES = flag("edges", "1,2,3").split(",").map(Number);
const BASELINE = flag("baseline", "9c7512b");
// sqld speaks Hrana over HTTP and over WebSocket; `ws` keeps one stream per client instead of a request each.
const PROTOCOL = flag("protocol", "http") as "http" | "ws";
// One-way delay between the edges and sqld (ms): a database in another host or zone, as Turso is to an edge.
const DB_LATENCY_MS = Number(flag("db-latency", "0"));
const CONCURRENCY = Number(flag("concurrency", "32"));
const WARMUP = 300;
const BENCH_SECRET_KEY = "00".repeat(32);
const ADMIN = "admin-token-for-the-bench-0123456789";

type Run = {
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  sqldUsPerTask: number;
  /** Bytes sqld wrote (write(2)/pwrite(2): WAL, replication log, network) per submission. */
  sqldBytesPerTask: number;
  /** CPU of the edge processes, of the agent double (their children) and of this load generator, per submission. */
  edgeUsPerTask: number;
  nodeUsPerTask: number;
  loadUsPerTask: number;
  /** The edge processes' context switches per submission: wake-ups, and preemptions by other runnable threads. */
  edgeWakeupsPerTask: number;
  edgePreemptionsPerTask: number;
};

/** A process's descendants (the edge's agent double; its tasks are held, not spawned). */
function descendants(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    let children = "";
    try {
      children = readFileSync(`/proc/${pid}/task/${t}/children`, "utf8");
    } catch {
      continue;
    }
    for (const c of children.split(" ").filter(Boolean).map(Number)) out.push(c, ...descendants(c));
  }
  return out;
}

/** `read` of each of several processes, leaving out one that has exited. */
const ofLive = <T>(pids: number[], read: (pid: number) => T): T[] =>
  pids.flatMap((pid) => {
    try {
      return [read(pid)];
    } catch {
      return [];
    }
  });
/** CPU of several processes; one that has exited counts 0. */
const cpuOf = (pids: number[]) => ofLive(pids, cpuMicros).reduce((sum, us) => sum + us, 0);
/** Context switches of several processes; one that has exited counts 0. */
const switchesOf = (pids: number[]) =>
  ofLive(pids, contextSwitches).reduce(
    (sum, s) => ({ voluntary: sum.voluntary + s.voluntary, involuntary: sum.involuntary + s.involuntary }),
    { voluntary: 0, involuntary: 0 },
  );
const selfMicros = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

function writtenBytes(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/io`, "utf8").match(/^wchar: (\d+)$/m)?.[1] ?? NaN);
}

/**
 * A TCP relay to `target` that holds every chunk `ms` in each direction, in order: the network between an edge
 * and its database. Resolves to the relay's `host:port`.
 */
async function delayedRelay(target: URL, ms: number): Promise<{ address: string; server: Server }> {
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    const relay = (from: typeof client, to: typeof client) => {
      from.on("data", (chunk) => setTimeout(() => to.write(chunk), ms));
      from.on("end", () => setTimeout(() => to.end(), ms));
      from.on("error", () => to.destroy());
    };
    relay(client, upstream);
    relay(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return { address: `127.0.0.1:${port}`, server };
}

async function startEdge(code: string, env: Record<string, string>): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(join(root, "node_modules", ".bin", "deno"), ["run", "-A", "scripts/bench/edge-server.ts", code], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once(
      "exit",
      (code) => reject(new Error(`edge exited (${code}) before listening: ${stderr.trim().split("\n").at(-1)}`)),
    );
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
    // Not too often: each poll is a count the database server pays for, inside the measured window.
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function load(urls: string[], key: string, n: number, latencies: number[] | null): Promise<number> {
  const body = JSON.stringify({ prompt: "bench", agent: { type: "command", command: "true" } });
  let next = 0;
  let errors = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, w) => {
    const url = urls[w % urls.length]!;
    while (next < n) {
      const i = next++;
      const t0 = performance.now();
      const res = await fetch(`${url}/api/tasks`, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${key}`,
          "Content-Type": "application/json",
          "Idempotency-Key": `bench-${i}-${Math.random()}`,
        },
        body,
      }).catch(() => null);
      await res?.arrayBuffer();
      if (res?.status !== 201) errors++;
      latencies?.push(performance.now() - t0);
    }
  }));
  return errors;
}

async function runOnce(code: string, edgeCount: number): Promise<Run> {
  const sqld = await startSqld();
  const relay = DB_LATENCY_MS > 0 ? await delayedRelay(new URL(sqld.url), DB_LATENCY_MS) : null;
  const dirs: string[] = [];
  const edges: { url: string; child: ChildProcess }[] = [];
  try {
    for (let e = 0; e < edgeCount; e++) {
      const dataDir = mkdtempSync(join(tmpdir(), "sam-bench-scaleout-"));
      dirs.push(dataDir);
      const viaRelay = relay ? `http://${relay.address}` : sqld.url;
      const databaseUrl = PROTOCOL === "ws" ? viaRelay.replace(/^http:/, "ws:") : viaRelay;
      edges.push(
        await startEdge(code, {
          SAM_DATA_DIR: dataDir,
          SAM_ADMIN_TOKEN: ADMIN,
          // The bench is one key sending thousands a minute: above the default per-key limit, by design.
          SAM_RATE_LIMIT_RPM: "1000000",
          // Edges sharing one database must share the key that seals agent tokens and credentials in it.
          SAM_SECRET_KEY: BENCH_SECRET_KEY,
          SAM_DATABASE_URL: databaseUrl,
          SAM_AGENT_READY_TIMEOUT: "2m",
        }),
      );
    }
    const admin = { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" };
    const key = await (await fetch(`${edges[0]!.url}/api/keys`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ name: "bench" }),
    })).json() as { id: string; key: string };
    const node = await (await fetch(`${edges[0]!.url}/api/nodes`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ ownerKeyId: key.id }),
    })).json() as { id: string };
    await poll("node ready", async () => {
      const view = await (await fetch(`${edges[0]!.url}/api/nodes/${node.id}`, { headers: admin })).json() as {
        status: string;
      };
      return view.status === "ready" ? true : undefined;
    }, 90_000);
    const counter = createClient({ url: sqld.url });
    const running = async () =>
      Number((await counter.execute("SELECT COUNT(*) AS n FROM tasks WHERE status = 'running'")).rows[0]!.n);
    try {
      const urls = edges.map((e) => e.url);
      await load(urls, key.key, WARMUP, null);
      await poll("warm-up dispatched", async () => ((await running()) >= WARMUP ? true : undefined), 120_000);
      const latencies: number[] = [];
      const cpuBefore = cpuMicros(sqld.pid);
      const writtenBefore = writtenBytes(sqld.pid);
      const edgePids = edges.map((e) => e.child.pid!);
      const nodePids = edgePids.flatMap(descendants);
      const edgeBefore = cpuOf(edgePids);
      const switchesBefore = switchesOf(edgePids);
      const nodeBefore = cpuOf(nodePids);
      const loadBefore = selfMicros();
      const started = performance.now();
      const errors = await load(urls, key.key, REQUESTS, latencies);
      const seconds = (performance.now() - started) / 1000;
      await poll(
        "all dispatched",
        async () => ((await running()) >= WARMUP + REQUESTS - errors ? true : undefined),
        180_000,
      );
      // The polling reads above cost sqld a little too; they are counted, against this tree and the baseline alike.
      const sqldUsPerTask = (cpuMicros(sqld.pid) - cpuBefore) / REQUESTS;
      const sqldBytesPerTask = (writtenBytes(sqld.pid) - writtenBefore) / REQUESTS;
      const edgeUsPerTask = (cpuOf(edgePids) - edgeBefore) / REQUESTS;
      const nodeUsPerTask = (cpuOf(nodePids) - nodeBefore) / REQUESTS;
      const loadUsPerTask = (selfMicros() - loadBefore) / REQUESTS;
      const switches = switchesOf(edgePids);
      const s = summary(latencies);
      return {
        reqPerSec: REQUESTS / seconds,
        p50: s.p50,
        p99: s.p99,
        errors,
        sqldUsPerTask,
        sqldBytesPerTask,
        edgeUsPerTask,
        nodeUsPerTask,
        loadUsPerTask,
        edgeWakeupsPerTask: (switches.voluntary - switchesBefore.voluntary) / REQUESTS,
        edgePreemptionsPerTask: (switches.involuntary - switchesBefore.involuntary) / REQUESTS,
      };
    } finally {
      counter.close();
    }
  } finally {
    for (const e of edges) await stopEdge(e.child);
    relay?.server.close();
    await sqld.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

const baselineDir = exportBaseline(root, BASELINE);
const head = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root }).stdout.toString().trim();
console.log(
  `POST /api/tasks on one sqld (${PROTOCOL}${
    DB_LATENCY_MS ? `, ${DB_LATENCY_MS} ms each way` : ""
  }), ${REQUESTS} requests at concurrency ${CONCURRENCY} over 1..3 edges (Deno), ${ROUNDS} round(s); baseline ${BASELINE} vs this tree (${head})`,
);
const results = new Map<string, Run[]>();
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const n of EDGES) {
      for (const [label, code] of [["baseline", baselineDir], ["this tree", root]] as const) {
        const id = `${n} ${label}`;
        const r = await runOnce(code, n).catch((
          err,
        ) => (console.log(`  ${id}: failed: ${(err as Error).message}`), null));
        if (!r) continue;
        console.log(
          `  round ${round + 1} ${n} edge(s) ${label.padEnd(9)} ${r.reqPerSec.toFixed(0).padStart(5)} req/s  p50 ${
            r.p50.toFixed(1)
          } ms  p99 ${r.p99.toFixed(1)} ms  sqld CPU ${(r.sqldUsPerTask / 1000).toFixed(3)} ms/task  ${
            (r.sqldBytesPerTask / 1024).toFixed(1)
          } KiB written/task  CPU ms/task: edges ${(r.edgeUsPerTask / 1000).toFixed(3)} node ${
            (r.nodeUsPerTask / 1000).toFixed(3)
          } load ${(r.loadUsPerTask / 1000).toFixed(3)}  edges' switches/task: wake-ups ${
            r.edgeWakeupsPerTask.toFixed(2)
          } preemptions ${r.edgePreemptionsPerTask.toFixed(2)}  errors ${r.errors}`,
        );
        results.set(id, [...(results.get(id) ?? []), r]);
      }
    }
  }
} finally {
  rmSync(baselineDir, { recursive: true, force: true });
}

console.log(
  "\n| edges | code | req/s | p50 ms | p99 ms | sqld CPU ms/submission | sqld KiB written/submission | errors | req/s vs baseline | sqld CPU vs baseline |",
);
console.log("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const n of EDGES) {
  const base = results.get(`${n} baseline`);
  for (const label of ["baseline", "this tree"]) {
    const runs = results.get(`${n} ${label}`);
    if (!runs) continue;
    const m = (f: (r: Run) => number) => median(runs.map(f));
    const vs = (f: (r: Run) => number) => (base ? `${(m(f) / median(base.map(f))).toFixed(2)}×` : "—");
    console.log(
      `| ${n} | ${label} | ${m((r) => r.reqPerSec).toFixed(0)} | ${m((r) => r.p50).toFixed(1)} | ${
        m((r) => r.p99).toFixed(1)
      } | ${(m((r) => r.sqldUsPerTask) / 1000).toFixed(3)} | ${(m((r) => r.sqldBytesPerTask) / 1024).toFixed(1)} | ${
        runs.reduce((k, r) => k + r.errors, 0)
      } | ${vs((r) => r.reqPerSec)} | ${vs((r) => r.sqldUsPerTask)} |`,
    );
  }
}
