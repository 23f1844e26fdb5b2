// Test support lives in `testing/` folders and production code never imports it: a newcomer sees only
// production code in the feature folders, and a fake cannot leak into what ships.
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";

const root = join(import.meta.dir, "..");
const PARTS = ["agent", "edge", "shared", "cloud-init", "scripts"];
const isTest = (f: string) => /\.(test|deno-test)\.tsx?$/.test(f);
/** Benchmarks and the test runner may use fakes; they ship nowhere. */
const notProduction = (rel: string) =>
  rel.split("/").includes("testing") || rel.split("/").includes("testdata") ||
  rel.startsWith("scripts/bench/") || isTest(rel);

function sources(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir)) {
    if (entry === "node_modules" || entry === "dist" || entry.startsWith(".")) continue;
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (/\.(ts|tsx|mjs)$/.test(entry)) out.push(relative(root, p));
  }
  return out;
}

const IMPORT = /(?:from\s*|import\s*\(\s*|import\s+)["'](\.{1,2}\/[^"']+)["']/g;

test("no production file imports from a testing/ folder", () => {
  const offenders: string[] = [];
  for (const part of PARTS) {
    for (const file of sources(join(root, part))) {
      if (notProduction(file)) continue;
      for (const m of readFileSync(join(root, file), "utf8").matchAll(IMPORT)) {
        const target = normalize(join(dirname(file), m[1]!));
        if (target.split("/").includes("testing")) offenders.push(`${file} → ${target}`);
      }
    }
  }
  expect(offenders).toEqual([]);
});

test("test support sits in testing/ folders, not beside production code", () => {
  const misplaced = PARTS.flatMap((part) => sources(join(root, part)))
    .filter((f) =>
      !notProduction(f) &&
      (/(^|\/)(fake|stub|test-support)[^/]*\//.test(f) || /(^|\/)(fake|stub|harness)[-.][^/]*$/.test(f))
    );
  expect(misplaced).toEqual([]);
});
