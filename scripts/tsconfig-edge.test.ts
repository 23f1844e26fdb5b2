// The edge runs on Deno, so npm test type-checks its production code a second time without Bun's types
// (tsconfig.edge.json): a `Bun.*` call there fails the check instead of the deploy. This keeps that true.
import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");

test("tsconfig.edge.json refuses a Bun API and accepts the node: built-ins Deno provides", () => {
  // Inside the repository, so the probe's config finds node_modules/@types as the real one does.
  mkdirSync(join(root, ".tmp"), { recursive: true });
  const dir = mkdtempSync(join(root, ".tmp", "tsconfig-edge-"));
  try {
    writeFileSync(
      join(dir, "probe.ts"),
      'import { join } from "node:path";\nexport const v = join("a", Bun.version);\n',
    );
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({ extends: join(root, "tsconfig.edge.json"), include: [], files: ["probe.ts"] }),
    );
    const tsc = Bun.spawnSync([join(root, "node_modules", ".bin", "tsc"), "-p", join(dir, "tsconfig.json")]);
    const errors = tsc.stdout.toString().trim().split("\n");
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain("probe.ts(2,");
    expect(errors[0]).toContain("Cannot find name 'Bun'");
    expect(tsc.exitCode).not.toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 30_000);
