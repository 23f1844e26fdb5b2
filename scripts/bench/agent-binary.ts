/**
 * Benchmarks of the compiled agent: binary size (raw, zstd, gzip), start → first `/health` 200
 * (median of runs), RSS when idle (`--idle=300` waits that many seconds before reading it), and RSS after
 * an hour-equivalent of the node's own events (heartbeats and resource samples at `--speedup` times their
 * default rate, for an hour / speedup). Each beside the smallest compiled `Bun.serve` binary. Idle RSS is
 * read three times, by how the binary sits in the page cache when it starts (see `prepare`).
 *   node_modules/.bin/bun scripts/bench/agent-binary.ts [--runs=15] [--idle=5] [--speedup=100] [--binary=agent/dist/sam-agent]
 */
import { Database } from "bun:sqlite";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const runs = arg("runs", 15);
const idleSeconds = arg("idle", 5);
const speedup = arg("speedup", 100);
const root = join(import.meta.dir, "..", "..");
const binary = process.argv.find((a) => a.startsWith("--binary="))?.slice("--binary=".length) ??
  join(root, "agent", "dist", "sam-agent");
const MiB = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const raw = readFileSync(binary);
const zstd = Bun.spawnSync(["zstd", "-19", "-T0", "-c", binary], { stderr: "ignore" });
console.log(
  `binary: ${MiB(raw.length)} raw, ${zstd.exitCode === 0 ? MiB(zstd.stdout.length) : "n/a"} zstd -19, ${
    MiB(gzipSync(raw, { level: 9 }).length)
  } gzip -9`,
);

const dir = mkdtempSync(join(tmpdir(), "sam-bench-bin-"));
const edge = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => Response.json({ ok: true }) });
writeFileSync(
  join(dir, "tokens"),
  "SAM_NODE_TOKEN=samnode_bench_0123456789\nSAM_AGENT_TOKEN=samagent_bench_0123456789\n",
);
const env = (i: number) => ({
  PATH: process.env.PATH!,
  SAM_NODE_ID: "bench",
  SAM_CONTROL_PLANE_URL: `http://127.0.0.1:${edge.port}`,
  SAM_TOKEN_FILE: join(dir, "tokens"),
  SAM_AGENT_DATA_DIR: join(dir, `data-${i}`),
  SAM_AGENT_HOST: "127.0.0.1",
  SAM_BOOT_SOURCE: "none",
});

/** Start with a fixed free port so we can poll /health from the moment of spawn. */
async function startToHealth(bin: string, i: number): Promise<number> {
  const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = probe.port!;
  probe.stop(true);
  const t0 = performance.now();
  const proc = Bun.spawn([bin], {
    env: { ...env(i), SAM_AGENT_PORT: String(port) },
    stdout: "ignore",
    stderr: "inherit",
  });
  try {
    for (;;) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`);
        if (res.status === 200) return performance.now() - t0;
      } catch {
        // not listening yet
      }
      if (performance.now() - t0 > 10_000) throw new Error("agent did not answer /health within 10 s");
      await Bun.sleep(1);
    }
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
  }
}

// Baseline: the smallest compiled Bun HTTP server, to separate Bun's own cost from the agent's.
const baselineSrc = join(dir, "baseline.ts");
writeFileSync(
  baselineSrc,
  `Bun.serve({ hostname: "127.0.0.1", port: Number(process.env.SAM_AGENT_PORT), fetch: () => Response.json({ ok: true }) });`,
);
const baseline = join(dir, "baseline");
Bun.spawnSync([process.execPath, "build", "--compile", "--minify", baselineSrc, "--outfile", baseline], {
  stdout: "ignore",
});

/**
 * How a binary's pages are in the page cache when it starts, which decides how many file pages the process
 * maps (kernel 6.x with large folios): "evicted" — read from disk, as after a reboot; "installed" — copied
 * with `install` and started at once, as a download is (a just-written file sits in large folios that are
 * mapped whole: ≈ 5 MiB more RSS); "boot" — installed, then written back and dropped from the cache as
 * cloud-init's agent-verify phase does (cloud-init/boot-plan.ts), so the agent reads what it runs from disk.
 */
type CacheState = "evicted" | "installed" | "boot";
const evict = (bin: string) => Bun.spawnSync(["dd", `if=${bin}`, "iflag=nocache", "count=0", "status=none"]);
function prepare(bin: string, state: CacheState, label: string): string {
  if (state === "evicted") {
    evict(bin);
    return bin;
  }
  const copy = join(dir, `${label}-${state}`);
  rmSync(copy, { force: true });
  Bun.spawnSync(["install", "-m", "0755", bin, copy]);
  if (state === "boot") {
    Bun.spawnSync(["sync", copy]);
    evict(copy);
  }
  return copy;
}

/** RSS after 1 s and after `seconds` more; with its composition from smaps_rollup at the end. */
async function idleRss(
  bin: string,
  seconds: number,
  extraEnv: Record<string, string> = {},
  run = 999,
): Promise<[number, number, string]> {
  const proc = Bun.spawn([bin], {
    env: { ...env(run), SAM_AGENT_PORT: "0", SAM_METRICS_INTERVAL: "60s", ...extraEnv },
    stdout: "ignore",
    stderr: "inherit",
  });
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"))![1]) * 1024;
  await Bun.sleep(1_000);
  const first = rss();
  await Bun.sleep(seconds * 1000);
  const last = rss();
  // Anonymous memory (heaps) vs file pages of the executable that were touched (Bun's code, counted in RSS).
  const rollup = readFileSync(`/proc/${proc.pid}/smaps_rollup`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(rollup)?.[1] ?? 0) * 1024;
  const parts = `anonymous ${MiB(kb("Anonymous"))}, file-backed ${MiB(kb("Rss") - kb("Anonymous"))}`;
  proc.kill("SIGTERM");
  await proc.exited;
  return [first, last, parts];
}

const agentStarts: number[] = [];
const baseStarts: number[] = [];
for (let i = 0; i < runs; i++) {
  agentStarts.push(await startToHealth(binary, i));
  baseStarts.push(await startToHealth(baseline, i));
}
const fmt = (xs: number[]) =>
  `median ${median(xs).toFixed(1)} ms (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)})`;
console.log(`start → first /health 200, ${runs} runs each (target ≤ 50 ms):`);
console.log(`  sam-agent          ${fmt(agentStarts)}`);
console.log(`  bare Bun.serve bin ${fmt(baseStarts)}   ratio ${(median(agentStarts) / median(baseStarts)).toFixed(2)}`);

const describe: Record<CacheState, string> = {
  evicted: "binary read from disk (as after a reboot)",
  installed: "binary installed and started at once (page cache as written)",
  boot: "binary installed as the boot does (written back, dropped from the cache)",
};
for (const [i, state] of (["evicted", "installed", "boot"] as const).entries()) {
  const [a1, a2, ap] = await idleRss(prepare(binary, state, "agent"), idleSeconds, {}, 990 + i);
  const [b1, b2, bp] = await idleRss(prepare(baseline, state, "baseline"), idleSeconds, {}, 980 + i);
  console.log(
    `idle RSS (target ≤ 40 MiB), ${describe[state]}: ` +
      `sam-agent ${MiB(a1)} after 1 s, ${MiB(a2)} after ${idleSeconds + 1} s (${ap}); bare Bun.serve bin ${MiB(b1)} / ${
        MiB(b2)
      } (${bp})`,
  );
}

// An hour of the node's own events at `speedup`×: heartbeats (each one an HTTP call and events) and samples.
const hourSeconds = Math.round(3600 / speedup);
const fast = {
  SAM_HEARTBEAT_INTERVAL: `${Math.round(30_000 / speedup)}ms`,
  SAM_METRICS_INTERVAL: `${Math.round(60_000 / speedup)}ms`,
};
const [h1, h2, hp] = await idleRss(binary, hourSeconds, fast, 998);
const db = new Database(join(dir, "data-998", "events.db"), { readonly: true });
const recorded = (db.query("SELECT count(*) AS n FROM events").get() as { n: number }).n;
db.close();
console.log(
  `RSS after an hour-equivalent (${hourSeconds} s at ${speedup}×, ${recorded} events recorded): sam-agent ${
    MiB(h2)
  } (${hp}; ${MiB(h1)} after 1 s)`,
);
edge.stop(true);
rmSync(dir, { recursive: true, force: true });
