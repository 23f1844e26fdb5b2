/**
 * A baseline commit's code for the side-by-side benchmarks: `git archive <ref>` of the code folders into
 * `.tmp/` inside the repo, so the baseline resolves the same node_modules (and deno.json) as this tree. A
 * dependency the baseline had and this tree dropped (hcloud-js) is installed into the baseline's own
 * node_modules, which resolution finds first.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { join } from "node:path";

export function exportBaseline(root: string, ref: string): string {
  mkdirSync(join(root, ".tmp"), { recursive: true });
  const dir = mkdtempSync(join(root, ".tmp", "bench-baseline-"));
  const archive = spawnSync("sh", ["-c", `git archive ${ref} edge shared cloud-init agent | tar -x -C '${dir}'`], {
    cwd: root,
    stdio: "inherit",
  });
  if (archive.status !== 0) throw new Error(`cannot export baseline ${ref}`);
  const pkg = JSON.parse(spawnSync("git", ["show", `${ref}:package.json`], { cwd: root }).stdout.toString()) as {
    dependencies?: Record<string, string>;
  };
  const missing = Object.entries(pkg.dependencies ?? {}).filter(([name]) =>
    !existsSync(join(root, "node_modules", name))
  );
  if (missing.length > 0) {
    const install = spawnSync("npm", [
      "install",
      "--prefix",
      dir,
      "--no-save",
      "--no-package-lock",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      ...missing.map(([name, version]) => `${name}@${version}`),
    ], { cwd: root, stdio: "inherit" });
    if (install.status !== 0) throw new Error(`cannot install the baseline's ${missing.map(([n]) => n).join(", ")}`);
  }
  return dir;
}
