/**
 * Idle RSS of two compiled agents, started alternately from a cold page cache, with whether JavaScriptCore's
 * DFG tier compiled anything during the run (the idle figure was bimodal on exactly that; see
 * docs/benchmarks.md § The VM agent). Prints each run and, per binary, how many runs sat over
 * 40 MiB, the median RSS and the median start → first `/health` 200 (cold, so disk reads included).
 * `--sources=DIR` also dumps the source of each DFG-compiled function (`BUN_JSC_dumpSourceAtDFGTime`) into
 * DIR/<run>-<binary>.txt, to name what the minified binary compiled.
 * `--bin=LABEL=PATH` (repeatable) compares more than two binaries; the start order rotates every run.
 *   node_modules/.bin/bun scripts/bench/agent-idle-modes.ts --before=/tmp/sam-agent-main [--after=agent/dist/sam-agent] [--runs=6] [--idle=20] [--sources=DIR]
 *   node_modules/.bin/bun scripts/bench/agent-idle-modes.ts --bin=main=/tmp/a --bin=jit=/tmp/b --bin=order=/tmp/c --runs=6
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../shared/testing/free-port.ts";

const opt = (name: string, fallback: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback;
const root = join(import.meta.dir, "..", "..");
const listed = process.argv.filter((a) => a.startsWith("--bin=")).map((a) =>
  a.slice("--bin=".length).split("=", 2) as [string, string]
);
const binaries: [string, string][] = listed.length
  ? listed
  : [["before", opt("before", "")], ["after", opt("after", join(root, "agent", "dist", "sam-agent"))]];
if (binaries.some(([, path]) => !path)) {
  throw new Error(
    "--before=<binary> (or --bin=LABEL=PATH twice) is required (e.g. main built with scripts/build-agent.ts's flags)",
  );
}
const runs = Number(opt("runs", "6"));
const idleSeconds = Number(opt("idle", "20"));
const sources = opt("sources", "");
const MiB = (n: number) => n / 1048576;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = mkdtempSync(join(tmpdir(), "sam-bench-modes-"));
const edge = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => Response.json({ ok: true }) });
writeFileSync(
  join(dir, "tokens"),
  "SAM_NODE_TOKEN=samnode_bench_0123456789\nSAM_AGENT_TOKEN=samagent_bench_0123456789\n",
);

type Run = { rss: number; anon: number; health: number; dfg: string[] };

async function run(bin: string, i: number, label: string): Promise<Run> {
  // Drop the binary's pages from the page cache, as after a reboot (see agent-binary.ts).
  Bun.spawnSync(["dd", `if=${bin}`, "iflag=nocache", "count=0", "status=none"]);
  const port = await freePort();
  const t0 = performance.now();
  const proc = Bun.spawn([bin], {
    env: {
      PATH: process.env.PATH!,
      SAM_NODE_ID: "bench",
      SAM_CONTROL_PLANE_URL: `http://127.0.0.1:${edge.port}`,
      SAM_TOKEN_FILE: join(dir, "tokens"),
      SAM_AGENT_DATA_DIR: join(dir, `data-${i}`),
      SAM_AGENT_HOST: "127.0.0.1",
      SAM_AGENT_PORT: String(port),
      SAM_BOOT_SOURCE: "none",
      SAM_METRICS_INTERVAL: "60s",
      BUN_JSC_reportDFGCompileTimes: "1",
      ...(sources ? { BUN_JSC_dumpSourceAtDFGTime: "1" } : {}),
    },
    stdout: "ignore",
    stderr: "pipe",
  });
  let health = NaN;
  while (Number.isNaN(health)) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health`)).status === 200) health = performance.now() - t0;
    } catch {
      // not listening yet
    }
    if (performance.now() - t0 > 10_000) throw new Error(`${bin} did not answer /health within 10 s`);
    await Bun.sleep(1);
  }
  await Bun.sleep(Math.max(0, idleSeconds * 1000 - (performance.now() - t0)));
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"))![1]) * 1024;
  const anon = Number(/^Anonymous:\s+(\d+)/m.exec(readFileSync(`/proc/${proc.pid}/smaps_rollup`, "utf8"))![1]) * 1024;
  proc.kill("SIGTERM");
  await proc.exited;
  const stderr = await new Response(proc.stderr).text();
  if (sources) writeFileSync(join(sources, `${label}.txt`), stderr);
  // One line per DFG compile, e.g. "Optimized _standardSchema#… using DFGMode with DFG into 1234 bytes in 5.6 ms".
  const dfg = stderr.split("\n").filter((l) => /with DFG/.test(l)).map((l) =>
    /^Optimized ([^#\s]+)/.exec(l)?.[1] ?? l.slice(0, 60)
  );
  return { rss, anon, health, dfg };
}

const results = new Map<string, Run[]>(binaries.map(([label]) => [label, []]));
const width = Math.max(...binaries.map(([label]) => label.length));
for (let i = 0; i < runs; i++) {
  const order = binaries.map((_, k) => binaries[(k + i) % binaries.length]!);
  for (const [k, [which, bin]] of order.entries()) {
    const r = await run(bin, i * binaries.length + k, `${i + 1}-${which}`);
    results.get(which)!.push(r);
    console.log(
      `run ${i + 1} ${which.padEnd(width)} RSS ${MiB(r.rss).toFixed(1)} MiB (anonymous ${
        MiB(r.anon).toFixed(1)
      }) at ${idleSeconds} s, /health after ${r.health.toFixed(1)} ms, DFG compiles: ${
        r.dfg.length ? r.dfg.join(", ") : "none"
      }`,
    );
  }
}
for (const [which, rs] of results) {
  const over = rs.filter((r) => r.rss > 40 * 1048576).length;
  const overMb = rs.filter((r) => r.rss > 40e6).length;
  const withDfg = rs.filter((r) => r.dfg.length > 0).length;
  console.log(
    `${which}: ${over}/${rs.length} runs over 40 MiB (${overMb} over 40 MB), ${withDfg}/${rs.length} with a DFG compile; RSS median ${
      MiB(median(rs.map((r) => r.rss))).toFixed(1)
    } MiB ` +
      `(${rs.map((r) => MiB(r.rss).toFixed(1)).join(" ")}); cold start → /health median ${
        median(rs.map((r) => r.health)).toFixed(1)
      } ms`,
  );
}
edge.stop(true);
rmSync(dir, { recursive: true, force: true });
