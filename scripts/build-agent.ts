/**
 * Builds the VM agent into one binary (DESIGN.md § Fixed names: `npm run build:agent`).
 * `--target=bun-linux-arm64` (or x64) cross-compiles; the output name gains the arch suffix then.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const targetArg = process.argv.find((a) => a.startsWith("--target="));
const target = targetArg?.slice("--target=".length);
if (target && !/^bun-linux-(x64|arm64)(-baseline|-modern)?$/.test(target)) {
  console.error(`build-agent: --target must be bun-linux-x64 or bun-linux-arm64, got '${target}'`);
  process.exit(2);
}
const outfile = join(root, "agent", "dist", target ? `sam-agent-${target.replace(/^bun-/, "")}` : "sam-agent");
mkdirSync(join(root, "agent", "dist"), { recursive: true });

// `--bytecode` ships JavaScriptCore bytecode instead of source: start → first /health drops from ≈ 46 to
// ≈ 26 ms on the dev VM (issue 3 target ≤ 50 ms) for +1.7 MiB of binary. It needs `--format=esm` for
// our top-level await.
const args = ["build", "--compile", "--bytecode", "--format=esm", "--minify", "--sourcemap=none", join(root, "agent", "main.ts"), "--outfile", outfile];
if (target) args.push(`--target=${target}`);
const proc = Bun.spawnSync([process.execPath, ...args], { stdout: "inherit", stderr: "inherit" });
if (proc.exitCode !== 0) process.exit(proc.exitCode ?? 1);
console.log(outfile);
