/**
 * What the host-mode task sandbox costs per command (docs/sandbox.md): `sh -c true` run the way the agent
 * runs a task's command — through bubblewrap, rlimits and the uid switch (`runSandboxed`, including the
 * workspace hand-over and the host layout read) — beside the same command run bare in its own process group
 * (`runInGroup`, what a host-mode command was before). Also a workspace of `--files` files, to show what the
 * per-command hand-over of the workspace to the task uid adds. Run as root (the uid switch needs it).
 *   node_modules/.bin/bun scripts/bench/sandbox-overhead.ts [--runs=40] [--files=2000]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runInGroup } from "../../agent/work/process-group.ts";
import { probeSandbox, runSandboxed, SANDBOX_DEFAULTS, type TaskSandbox } from "../../agent/work/sandbox/index.ts";

const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const runs = arg("runs", 40);
const files = arg("files", 2000);
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

const status = probeSandbox({ mode: "on" }, process.env.PATH);
if (status.state !== "ready") {
  throw new Error(`no sandbox here: ${status.state === "unavailable" ? status.message : "off"}`);
}
const dir = mkdtempSync(join(tmpdir(), "sam-bench-sandbox-"));

async function time(fn: () => Promise<unknown>): Promise<number[]> {
  await fn(); // warm-up
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}

function workspace(name: string, n: number): TaskSandbox {
  const ws = join(dir, name);
  mkdirSync(ws);
  for (let i = 0; i < n; i++) {
    if (i % 100 === 0) mkdirSync(join(ws, `d${i / 100}`));
    writeFileSync(join(ws, `d${Math.floor(i / 100)}`, `f${i}`), "x");
  }
  return { taskId: `bench-${name}`, workspace: ws, config: SANDBOX_DEFAULTS, status, secrets: [] };
}

const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", SAM_TASK_ID: "bench" };
const onLine = () => {};
try {
  const empty = workspace("empty", 0);
  const full = workspace("full", files);
  const bare = await time(() => runInGroup(["sh", "-c", "true"], { cwd: empty.workspace, env, onLine }));
  const boxed = await time(() => runSandboxed(empty, "true", { env, onLine }));
  const boxedFull = await time(() => runSandboxed(full, "true", { env, onLine }));
  const row = (name: string, xs: number[]) =>
    console.log(
      `${name.padEnd(48)} p50 ${pct(xs, 0.5).toFixed(1).padStart(6)} ms   p90 ${
        pct(xs, 0.9).toFixed(1).padStart(6)
      } ms   ×${(pct(xs, 0.5) / pct(bare, 0.5)).toFixed(1)}`,
    );
  console.log(`sh -c true, ${runs} runs each (ratio: p50 against the bare command)`);
  row("bare (runInGroup, no sandbox)", bare);
  row("sandboxed, empty workspace", boxed);
  row(`sandboxed, workspace of ${files} files`, boxedFull);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
