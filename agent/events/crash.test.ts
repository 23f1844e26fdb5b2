import { afterAll, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventStore } from "./store.ts";

const dir = mkdtempSync(join(tmpdir(), "sam-crash-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Run the burst writer until it has acknowledged `batches` commits, then SIGKILL it; the highest acknowledged id. */
async function burstAndKill(path: string, batches: number): Promise<number> {
  const child = Bun.spawn([process.execPath, join(import.meta.dir, "testdata", "burst-writer.ts"), path], {
    stdout: "pipe",
    stderr: "inherit",
  });
  let acked = 0;
  let seen = 0;
  try {
    const reader = child.stdout.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    const deadline = Date.now() + 10_000;
    while (seen < batches && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        const m = /^committed (\d+)$/.exec(line);
        if (m) {
          acked = Math.max(acked, Number(m[1]));
          seen++;
        }
      }
    }
  } finally {
    child.kill("SIGKILL");
    await child.exited;
  }
  expect(seen).toBeGreaterThanOrEqual(batches);
  return acked;
}

test("kill -9 during a write burst: every acknowledged event survives and the database is intact", async () => {
  const path = join(dir, "events.db");
  let previous = 0;
  for (let round = 0; round < 3; round++) {
    const acked = await burstAndKill(path, 20);
    expect(acked).toBeGreaterThan(previous);
    const db = new Database(path);
    expect(db.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
    // One writer, AUTOINCREMENT ids: every id up to the last acknowledged one is there.
    expect(db.query("SELECT count(*) AS n FROM events WHERE id <= ?").get(acked)).toEqual({ n: acked });
    db.close();
    previous = acked;
  }
  const reopened = new EventStore(path, { nodeId: "crash-node" });
  reopened.record({ type: "agent.start", message: "after the crashes" });
  reopened.flush();
  expect(reopened.query({ limit: 1, type: "agent.start" }).data[0]!.id).toBeGreaterThan(previous);
  reopened.close();
}, 30_000);
