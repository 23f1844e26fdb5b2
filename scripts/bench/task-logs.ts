/**
 * What one task that prints 100,000 lines costs the edge's database: rows written (SQLite's total_changes,
 * triggers included, which is what Turso bills as rows written) and bytes the database grew by, for a
 * baseline commit and this tree side by side. The lines arrive as the agent sends them: 100 batches of
 * 1,000 through the real callback route; this tree is measured at its default cap (SAM_TASK_LOG_MAX_LINES,
 * 10,000 kept lines) and with the cap raised to keep all 100,000. Each measurement runs in its own process.
 *   node_modules/.bin/bun scripts/bench/task-logs.ts [--lines 100000] [--baseline 9c7512b]
 */
import { exportBaseline } from "./baseline.ts";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const root = join(import.meta.dir, "..", "..");
const flag = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const LINES = Number(flag("lines", "100000"));
const BATCH = 1000;

type Result = { rowsWritten: number; bytes: number; eventRows: number; seconds: number };

/** The test edge, its provider double and `until` of the tree at `code`, wherever that tree keeps them. */
async function testSupport(code: string) {
  const load = (...path: string[]) => import(pathToFileURL(join(code, ...path)).href);
  // Baselines from before the test doubles were merged keep all three in edge/testing/harness.ts.
  if (!existsSync(join(code, "edge", "testing", "test-edge.ts"))) {
    const harness = await load("edge", "testing", "harness.ts");
    return { ...harness, ProviderDouble: harness.DoubleProvider };
  }
  return {
    ...(await load("edge", "testing", "test-edge.ts")),
    ...(await load("edge", "testing", "provider-double.ts")),
    ...(await load("shared", "testing", "until.ts")),
  };
}

async function measure(code: string, env: Record<string, string>): Promise<Result> {
  const harness = await testSupport(code);
  const provider = new harness.ProviderDouble({ autoReady: true, double: { mode: "hold" } });
  const t = await harness.startTestEdge({ provider, env });
  try {
    const key = await t.createKey();
    const task = await (await t.call("POST", "/api/tasks", { token: key.key, body: { prompt: "p" } })).json();
    const view = await harness.until("running", async () => {
      const v = await (await t.call("GET", `/api/tasks/${task.id}`)).json();
      return v.status === "running" ? v : undefined;
    }, 30_000);
    const agent = provider.agents.get(view.nodeId);
    const db = t.edge.db;
    const stat = async () => {
      await db.execute("PRAGMA wal_checkpoint(TRUNCATE)");
      const r = await db.execute(
        "SELECT total_changes() AS c, (SELECT page_count FROM pragma_page_count()) * (SELECT page_size FROM pragma_page_size()) - (SELECT freelist_count FROM pragma_freelist_count()) * (SELECT page_size FROM pragma_page_size()) AS bytes",
      );
      return { changes: Number(r.rows[0].c), bytes: Number(r.rows[0].bytes) };
    };
    const before = await stat();
    const started = performance.now();
    for (let from = 0; from < LINES; from += BATCH) {
      const events = Array.from({ length: Math.min(BATCH, LINES - from) }, (_, i) => ({
        seq: from + i,
        at: Date.now(),
        stream: "stdout",
        message: `line ${from + i}: compiling module ${(from + i) % 997} of the workspace, ok`,
      }));
      const res = await agent.logs(task.id, events);
      if (res.status !== 200) throw new Error(`log batch refused: ${res.status}`);
    }
    const seconds = (performance.now() - started) / 1000;
    const after = await stat();
    const rows = await db.execute({
      sql: "SELECT COUNT(*) AS n FROM task_events WHERE task_id = ? AND type <> 'status'",
      args: [task.id],
    });
    return {
      rowsWritten: after.changes - before.changes,
      bytes: after.bytes - before.bytes,
      eventRows: Number(rows.rows[0].n),
      seconds,
    };
  } finally {
    await t.stop();
  }
}

if (process.argv[2] === "--child") {
  const result = await measure(process.argv[3]!, JSON.parse(process.argv[4]!));
  console.log(JSON.stringify(result));
  process.exit(0);
}

mkdirSync(join(root, ".tmp"), { recursive: true });
const baselineRef = flag("baseline", "9c7512b");
const baseline = exportBaseline(root, baselineRef);
const runs: [string, string, Record<string, string>][] = [
  [`baseline ${baselineRef}`, baseline, {}],
  ["this tree, default cap (10,000 lines kept)", root, {}],
  [`this tree, cap ${LINES} (all lines kept)`, root, { SAM_TASK_LOG_MAX_LINES: String(LINES) }],
];
console.log(`One task printing ${LINES} lines in batches of ${BATCH}, file: database`);
console.log("| code | rows written | bytes stored | event rows | s | rows vs baseline | bytes vs baseline |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
let base: Result | null = null;
try {
  for (const [label, code, env] of runs) {
    const out = spawnSync(join(root, "node_modules", ".bin", "bun"), [
      import.meta.path,
      "--child",
      code,
      JSON.stringify(env),
    ], { cwd: root, env: { ...process.env, SAM_TEST: "1" }, encoding: "utf8" });
    const line = out.stdout.split("\n").find((l) => l.startsWith("{"));
    if (!line) throw new Error(`${label} failed: ${out.stderr.slice(-500)}`);
    const r = JSON.parse(line) as Result;
    base ??= r;
    console.log(
      `| ${label} | ${r.rowsWritten} | ${r.bytes} | ${r.eventRows} | ${r.seconds.toFixed(1)} | ${
        (r.rowsWritten / base.rowsWritten).toFixed(4)
      }× | ${(r.bytes / base.bytes).toFixed(3)}× |`,
    );
  }
} finally {
  rmSync(baseline, { recursive: true, force: true });
}
