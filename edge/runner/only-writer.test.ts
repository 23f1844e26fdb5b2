// The runner is the only writer of task and node status: routes, the admin pages and the rest of the edge call
// it, never the stores' status-moving methods. With one writer, the order of a task's or a node's moves (and
// what follows each: a wakeup, the next placement, a server delete) can be read in one place.
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(import.meta.dir, "..", "..");
const edge = join(root, "edge");

/** The store methods that move a task's or a node's status (or create a task or node in one). */
const STATUS_WRITE = new RegExp(
  [
    String.raw`\.(transition|dispatchQueued|drainIdleFor|insertUnderCap)\(`,
    String.raw`\btasks\.submit\(`,
    String.raw`UPDATE\s+(tasks|nodes)\s+SET\s+status\b`,
  ].join("|"),
  "g",
);

function sources(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (/\.tsx?$/.test(entry)) out.push(relative(root, p));
  }
  return out;
}

const production = (rel: string) => !/\.(test|deno-test)\.tsx?$/.test(rel) && !rel.split("/").includes("testing");
/** The runner writes; the stores define the writes; migrations may reshape rows once. */
const allowed = (rel: string) =>
  rel.startsWith("edge/runner/") || rel === "edge/tasks/store.ts" || rel === "edge/nodes/store.ts" ||
  rel === "edge/db/migrations.ts";

test("no production file outside edge/runner/ moves a task's or a node's status", () => {
  const offenders: string[] = [];
  for (const file of sources(edge).filter((f) => production(f) && !allowed(f))) {
    const text = readFileSync(join(root, file), "utf8");
    for (const m of text.matchAll(STATUS_WRITE)) {
      offenders.push(`${file}:${text.slice(0, m.index).split("\n").length}: ${m[0]}`);
    }
  }
  expect(offenders).toEqual([]);
});
