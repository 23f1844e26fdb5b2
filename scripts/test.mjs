#!/usr/bin/env node
// `npm test`: every test of every part. Type checks (tsc for the Bun side, tsc without Bun types for the edge's
// production code, deno check for the Deno entry), `bun test` for agent, shared, cloud-init and the edge app,
// and `deno test` for the Deno path of the edge.
// Ends with one "N passed, N failed" line summing both runners; any failure fails the command.
import { spawn, spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const bin = (name) => join(root, "node_modules", ".bin", name);
const extra = process.argv.slice(2);

const system = spawnSync(process.execPath, [join(root, "scripts", "system-packages.mjs"), "test"], {
  cwd: root,
  stdio: "inherit",
});
if (system.status !== 0) process.exit(system.status ?? 1);
const setup = spawnSync(process.execPath, [join(root, "scripts", "setup.mjs")], { cwd: root, stdio: "inherit" });
if (setup.status !== 0) process.exit(setup.status ?? 1);

function findFiles(dir, pattern, out = []) {
  for (const entry of readdirSync(dir)) {
    if (entry === "node_modules" || entry.startsWith(".") || entry === "dist") continue;
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) findFiles(p, pattern, out);
    else if (pattern.test(entry)) out.push(relative(root, p));
  }
  return out;
}

/** Run a command, echo its output live, and return the exit code with everything it printed. */
function step(title, cmd, args, env = {}) {
  console.log(`\n== ${title}`);
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => {
      output += d;
      process.stdout.write(d);
    });
    child.stderr.on("data", (d) => {
      output += d;
      process.stderr.write(d);
    });
    child.on("close", (code) => resolve({ code: code ?? 1, output }));
  });
}

const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, "");
const failures = [];
let passed = 0;
let failed = 0;

const tsc = await step("type check (tsc: agent, shared, cloud-init, edge, scripts)", bin("tsc"), [
  "-p",
  "tsconfig.json",
]);
if (tsc.code !== 0) failures.push("tsc");

// The edge runs on Deno: its production code (and the shared and cloud-init code it imports) is checked again
// without Bun's types, so a `Bun.*` call cannot creep in behind the main tsconfig's `types: ["bun"]`.
const tscEdge = await step("type check (tsc: edge production code without Bun types)", bin("tsc"), [
  "-p",
  "tsconfig.edge.json",
]);
if (tscEdge.code !== 0) failures.push("tsc -p tsconfig.edge.json");

// One formatter at one line width (deno.json § fmt): `node_modules/.bin/deno fmt` rewrites, this only checks.
const fmt = await step("format check (deno fmt --check)", bin("deno"), ["fmt", "--check"]);
if (fmt.code !== 0) failures.push("deno fmt --check (run: node_modules/.bin/deno fmt)");

const denoTests = findFiles(join(root, "edge"), /\.deno-test\.ts$/);
const denoCheck = await step("type check (deno check: the Deno entry and its tests)", bin("deno"), [
  "check",
  "edge/main.ts",
  ...denoTests,
]);
if (denoCheck.code !== 0) failures.push("deno check");

// --isolate: each file gets a fresh global, so a handle one file leaks (an open stream, a timer) cannot stall another.
const bun = await step("bun test", bin("bun"), ["test", "--isolate", ...extra], { SAM_TEST: "1" });
{
  const out = strip(bun.output);
  const p = [...out.matchAll(/^\s*(\d+) pass$/gm)].pop();
  const f = [...out.matchAll(/^\s*(\d+) fail$/gm)].pop();
  passed += p ? Number(p[1]) : 0;
  failed += f ? Number(f[1]) : 0;
  if (bun.code !== 0) failures.push("bun test");
}

if (denoTests.length > 0) {
  const deno = await step("deno test (the edge under Deno)", bin("deno"), [
    "test",
    "--allow-all",
    "--no-check",
    ...denoTests,
  ], { SAM_TEST: "1" });
  const out = strip(deno.output);
  const m = [...out.matchAll(/(\d+) passed \| (\d+) failed/g)].pop();
  passed += m ? Number(m[1]) : 0;
  failed += m ? Number(m[2]) : 0;
  if (deno.code !== 0) failures.push("deno test");
}

console.log("");
if (failures.length > 0) console.log(`failed steps: ${failures.join(", ")}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failures.length > 0 || failed > 0 ? 1 : 0);
