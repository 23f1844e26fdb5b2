/**
 * Builds the VM agent into one binary (`npm run build:agent`).
 * `--target=bun-linux-arm64` (or x64) cross-compiles; the output name gains the arch suffix then.
 *
 * Two passes (docs/agent.md § Memory): the first builds for this machine and runs that binary through an idle
 * agent's life against a stub control plane (start, ready, a heartbeat and a monitor sample, `/health`,
 * SIGTERM) with `BUN_BYTECODE_ORDER_OUT`, recording which functions it loads; the second builds the real
 * binary with `--bytecode-order` on that record, so the bytecode an idle agent uses sits together at the
 * front and the rest of the executable's bytecode is never paged in. The record names functions, not
 * machine code, so a host recording serves a cross-compiled target too. `--no-order` skips the first pass.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listeningUrl } from "../agent/listening-line.ts";

/**
 * The JIT policy the binary starts with (`--compile-jit-policy`): JavaScriptCore's tier-up thresholds × 32
 * until the first task arrives (agent/work/index.ts sets it back to 1). Start-up code runs once, so without
 * this the DFG tier compiled some builtin during start in most cold starts and kept ≈ 2 MiB of compiler pages
 * resident for the node's life (docs/benchmarks.md § The VM agent).
 */
const STARTUP_JIT_POLICY = 32;

const root = join(import.meta.dir, "..");
const targetArg = process.argv.find((a) => a.startsWith("--target="));
const target = targetArg?.slice("--target=".length);
if (target && !/^bun-linux-(x64|arm64)(-baseline|-modern)?$/.test(target)) {
  console.error(`build-agent: --target must be bun-linux-x64 or bun-linux-arm64, got '${target}'`);
  process.exit(2);
}
const withOrder = !process.argv.includes("--no-order");
const dist = join(root, "agent", "dist");
const outfile = join(dist, target ? `sam-agent-${target.replace(/^bun-/, "")}` : "sam-agent");
mkdirSync(dist, { recursive: true });

// `--bytecode` ships JavaScriptCore bytecode instead of source: start → first /health drops from ≈ 46 to
// ≈ 26 ms on the dev VM (the start-up target is ≤ 50 ms) for +1.7 MiB of binary. It needs `--format=esm` for
// our top-level await.
// `--max-http-header-size`: Bun's parser answers an oversized header with an empty-bodied 431 before the app
// sees it; with room up to 256 KiB the agent's own check (agent/server/app.ts, 16 KiB) answers in the JSON
// error shape instead.
const common = [
  "build",
  "--compile",
  "--bytecode",
  "--format=esm",
  "--minify",
  "--sourcemap=none",
  "--compile-exec-argv=--max-http-header-size=262144",
  join(root, "agent", "main.ts"),
];

function build(out: string, extra: string[]): void {
  const proc = Bun.spawnSync([process.execPath, ...common, "--outfile", out, ...extra], {
    stdout: "ignore",
    stderr: "inherit",
  });
  if (proc.exitCode !== 0) process.exit(proc.exitCode ?? 1);
}

/** Runs `binary` through an idle agent's first seconds and returns the function record it wrote. */
async function recordIdleLife(binary: string, work: string): Promise<string> {
  const profile = join(work, "bytecode-order.txt");
  const tokens = join(work, "tokens");
  writeFileSync(tokens, "SAM_NODE_TOKEN=samnode_build_0123456789\nSAM_AGENT_TOKEN=samagent_build_0123456789\n", {
    mode: 0o600,
  });
  const seen: string[] = [];
  const edge = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (req) => {
      seen.push(new URL(req.url).pathname);
      return Response.json({ ok: true, cancel: [] });
    },
  });
  const proc = Bun.spawn([binary], {
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      SAM_NODE_ID: "build",
      SAM_CONTROL_PLANE_URL: `http://127.0.0.1:${edge.port}`,
      SAM_TOKEN_FILE: tokens,
      SAM_AGENT_DATA_DIR: join(work, "data"),
      SAM_AGENT_HOST: "127.0.0.1",
      SAM_AGENT_PORT: "0",
      SAM_BOOT_SOURCE: "none",
      SAM_HEARTBEAT_INTERVAL: "300ms",
      SAM_METRICS_INTERVAL: "300ms",
      BUN_BYTECODE_ORDER_OUT: profile,
    },
    stdout: "pipe",
    stderr: "pipe",
  });
  try {
    const deadline = Date.now() + 10_000;
    const { url, out } = await listeningUrl(proc.stdout);
    if (!url) throw new Error(`the agent did not start: ${out}${await new Response(proc.stderr).text()}`);
    while (seen.filter((p) => p === "/api/agent/heartbeat").length < 2 && Date.now() < deadline) await Bun.sleep(20);
    if (!seen.includes("/api/agent/ready")) throw new Error("the agent sent no ready callback");
    const health = await fetch(`${url}/health`);
    if (health.status !== 200) throw new Error(`/health answered ${health.status}`);
    await Bun.sleep(700); // a monitor sample and a heartbeat after the request, as the idle node's life goes on
    proc.kill("SIGTERM");
    if ((await proc.exited) !== 0) {
      throw new Error(`the agent exited with ${proc.exitCode}: ${await new Response(proc.stderr).text()}`);
    }
  } finally {
    proc.kill("SIGKILL");
    edge.stop(true);
  }
  const record = readFileSync(profile, "utf8");
  if (!record.startsWith("v2\n")) throw new Error(`unexpected bytecode order record: ${record.slice(0, 40)}`);
  return record;
}

const jitPolicy = `--compile-jit-policy=${STARTUP_JIT_POLICY}`;
const extra = [jitPolicy, ...(target ? [`--target=${target}`] : [])];
if (withOrder) {
  const work = mkdtempSync(join(tmpdir(), "sam-agent-order-"));
  try {
    const probe = join(work, "sam-agent-probe");
    build(probe, [jitPolicy]); // for this machine, whatever the target: it has to run here
    let record: string;
    try {
      record = await recordIdleLife(probe, work);
    } catch (err) {
      console.error(
        `build-agent: recording the idle agent's bytecode order failed: ${
          (err as Error).message
        } (--no-order builds without it)`,
      );
      process.exit(1);
    }
    const profile = join(dist, "bytecode-order.txt");
    writeFileSync(profile, record);
    extra.push(`--bytecode-order=${profile}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
build(outfile, extra);
console.log(outfile);
