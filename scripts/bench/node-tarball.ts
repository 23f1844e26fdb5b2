/**
 * The Node.js tarball's decompression, gzip (what the boot fetches now) beside xz (what it fetched before):
 * the same official files packed both ways, each extracted three times, medians side by side as a ratio.
 * Under emulation the boot lab measured the xz extraction as the longest step of the critical path.
 *   node_modules/.bin/bun scripts/bench/node-tarball.ts
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nodeDistribution } from "../../lab/assets.ts";

const cache = process.env.SAM_LAB_CACHE ?? "/var/cache/sam-lab";
const dist = await nodeDistribution(cache);
const work = mkdtempSync(join(tmpdir(), "sam-bench-node-"));
const xz = join(work, "node.tar.xz");
Bun.spawnSync(["sh", "-c", `gzip -dc '${dist.tarball}' | xz -6 -T1 >'${xz}'`]);

function median(cmd: string[]): number {
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const out = join(work, `out-${i}`);
    Bun.spawnSync(["mkdir", "-p", out]);
    const t = performance.now();
    const r = Bun.spawnSync([...cmd, "-C", out]);
    if (r.exitCode !== 0) throw new Error(r.stderr.toString());
    runs.push(performance.now() - t);
    rmSync(out, { recursive: true, force: true });
  }
  return runs.sort((a, b) => a - b)[1]!;
}

const gzMs = median(["tar", "-xzf", dist.tarball]);
const xzMs = median(["tar", "-xJf", xz]);
const mb = (f: string) => (statSync(f).size / 1e6).toFixed(1);
console.log(`extract .tar.gz (${mb(dist.tarball)} MB): ${(gzMs / 1000).toFixed(2)} s`);
console.log(`extract .tar.xz (${mb(xz)} MB): ${(xzMs / 1000).toFixed(2)} s`);
console.log(
  `xz / gz: ${(xzMs / gzMs).toFixed(1)}× (host; the lab measured CPU-bound steps 8–15× slower under emulation)`,
);
rmSync(work, { recursive: true, force: true });
