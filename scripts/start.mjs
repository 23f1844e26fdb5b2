#!/usr/bin/env node
// `npm start`: set up if needed, then run the edge under Deno on its embedded defaults. Signals are passed
// on so Ctrl-C lets the edge stop its local nodes and close its database before exiting.
import { spawn, spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const setup = spawnSync(process.execPath, [join(root, "scripts", "setup.mjs")], { cwd: root, stdio: "inherit" });
if (setup.status !== 0) process.exit(setup.status ?? 1);

const edge = spawn(join(root, "node_modules", ".bin", "deno"), [
  "run",
  "--allow-all",
  "edge/main.ts",
  ...process.argv.slice(2),
], {
  cwd: root,
  stdio: "inherit",
});
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => edge.kill(signal));
}
edge.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 + 2 : 1)));
