import { afterEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { closeSync, mkdtempSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventStore } from "./store.ts";
import { until } from "../../shared/testing/until.ts";

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "sam-events-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("EventStore", () => {
  test("record queues without writing; the timer commits the batch in the background", async () => {
    const dir = tempDir();
    let commits = 0;
    const store = new EventStore(join(dir, "events.db"), { nodeId: "n1", onCommit: () => commits++ });
    store.record({ type: "agent.start", message: "hello", detail: { pid: 1 } });
    store.record({ type: "task.step", message: "clone", taskId: "t1", level: "warn" });
    expect(commits).toBe(0);
    await until("the first commit", () => commits === 1);
    const other = new Database(join(dir, "events.db"), { readonly: true });
    const rows = other.query("SELECT type, node_id, task_id, level, detail FROM events ORDER BY id").all();
    other.close();
    expect(rows).toEqual([
      { type: "agent.start", node_id: "n1", task_id: null, level: "info", detail: '{"pid":1}' },
      { type: "task.step", node_id: "n1", task_id: "t1", level: "warn", detail: null },
    ]);
    store.close();
  });

  test("a full batch is committed at once, in one transaction", () => {
    const dir = tempDir();
    const commits: number[] = [];
    const store = new EventStore(join(dir, "events.db"), {
      nodeId: "n1",
      maxBatch: 100,
      onCommit: (_, n) => commits.push(n),
    });
    for (let i = 0; i < 250; i++) store.record({ type: "x", message: `m${i}` });
    expect(commits).toEqual([100, 100]);
    store.close();
    expect(commits).toEqual([100, 100, 50]);
  });

  test("the timer commits a burst in bounded transactions, one per turn of the event loop, losing nothing", async () => {
    const commits: number[] = [];
    // Something else that wants the event loop once the drain has begun (queued right after the first
    // transaction, like a request arriving mid-burst) gets it before the drain finishes.
    let between = -1;
    const onCommit = (_: unknown, n: number) => {
      commits.push(n);
      if (commits.length === 1) {
        setImmediate(() => {
          between = commits.length;
        });
      }
    };
    const store = new EventStore(join(tempDir(), "events.db"), {
      nodeId: "n1",
      maxBatch: 10_000,
      turnBatch: 100,
      flushIntervalMs: 1,
      onCommit,
    });
    for (let i = 0; i < 250; i++) store.record({ type: "x", message: `m${i}` });
    const deadline = Date.now() + 3_000;
    while (commits.reduce((a, b) => a + b, 0) < 250 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 2));
    }
    expect(commits).toEqual([100, 100, 50]);
    expect(between).toBeGreaterThan(0);
    expect(between).toBeLessThan(3);
    expect(store.query({ limit: 1000 }).data.map((e) => e.message)).toEqual(
      Array.from({ length: 250 }, (_, i) => `m${i}`),
    );
    store.close();
  });

  test("survives a reopen, with the schema versioned", () => {
    const dir = tempDir();
    const path = join(dir, "events.db");
    const a = new EventStore(path, { nodeId: "n1" });
    a.record({ type: "agent.start", message: "first run" });
    a.close();
    const b = new EventStore(path, { nodeId: "n1" });
    expect(b.query({ limit: 10 }).data.map((e) => e.message)).toEqual(["first run"]);
    b.close();
    const raw = new Database(path, { readonly: true });
    expect(raw.query("PRAGMA user_version").get()).toEqual({ user_version: 1 });
    expect(raw.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    raw.close();
  });

  test("queries filter by time, type (exact or prefix), task and minimum level, and page by cursor", () => {
    const store = new EventStore(join(tempDir(), "events.db"), { nodeId: "n1" });
    store.record({ at: 1000, type: "heartbeat.sent", message: "a" });
    store.record({ at: 2000, type: "heartbeat.failed", message: "b", level: "warn" });
    store.record({ at: 3000, type: "task.step", message: "c", taskId: "t1" });
    store.record({ at: 4000, type: "error", message: "d", level: "error", taskId: "t1" });
    store.record({ at: 5000, type: "task.step", message: "e", taskId: "t2", level: "debug" });
    store.flush();
    const msgs = (q: Parameters<EventStore["query"]>[0]) => store.query(q).data.map((e) => e.message).join("");
    expect(msgs({ limit: 100 })).toBe("abcde");
    expect(msgs({ limit: 100, since: 2000, until: 4000 })).toBe("bc");
    expect(msgs({ limit: 100, type: "heartbeat.*" })).toBe("ab");
    expect(msgs({ limit: 100, type: "heartbeat" })).toBe("");
    expect(msgs({ limit: 100, type: "task.step" })).toBe("ce");
    expect(msgs({ limit: 100, taskId: "t1" })).toBe("cd");
    expect(msgs({ limit: 100, level: "warn" })).toBe("bd");
    const page1 = store.query({ limit: 2 });
    expect(page1.data.map((e) => e.message)).toEqual(["a", "b"]);
    expect(page1.nextCursor).not.toBeNull();
    const page2 = store.query({ limit: 2, afterId: Number(page1.nextCursor) });
    expect(page2.data.map((e) => e.message)).toEqual(["c", "d"]);
    const page3 = store.query({ limit: 2, afterId: Number(page2.nextCursor) });
    expect(page3.data.map((e) => e.message)).toEqual(["e"]);
    expect(page3.nextCursor).toBeNull();
    store.close();
  });

  test("retention deletes only events older than the cutoff, in chunks, and ids are never reused", async () => {
    const store = new EventStore(join(tempDir(), "events.db"), { nodeId: "n1", maxBatch: 10_000 });
    for (let i = 0; i < 5_000; i++) store.record({ at: i, type: "old", message: "x" });
    store.record({ at: 10_000, type: "new", message: "kept" });
    store.flush();
    expect(await store.prune(5_000)).toBe(5_000);
    expect(store.query({ limit: 10 }).data.map((e) => e.message)).toEqual(["kept"]);
    store.record({ at: 10_001, type: "new", message: "later" });
    store.flush();
    const ids = store.query({ limit: 10 }).data.map((e) => e.id);
    expect(ids[1]!).toBeGreaterThan(ids[0]!);
    store.close();
  });

  test("a snapshot is a valid database with everything recorded, even what was still queued", () => {
    const dir = tempDir();
    const store = new EventStore(join(dir, "events.db"), { nodeId: "n1" });
    for (let i = 0; i < 100; i++) store.record({ type: "x", message: `m${i}` });
    const snapshot = store.openSnapshot(join(dir, "unused.db"), { inPlace: true });
    store.record({ type: "x", message: "after" });
    store.flush();
    const bytes = new Uint8Array(snapshot.size);
    readSync(snapshot.fd, bytes, 0, snapshot.size, 0);
    closeSync(snapshot.fd);
    snapshot.release();
    store.close();
    writeFileSync(join(dir, "copy.db"), bytes);
    const copy = new Database(join(dir, "copy.db"), { readonly: true });
    expect(copy.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
    expect(copy.query("SELECT count(*) AS n FROM events").get()).toEqual({ n: 100 });
    copy.close();
  });

  test("detail that cannot be serialised keeps the event", () => {
    const store = new EventStore(join(tempDir(), "events.db"), { nodeId: null });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    store.record({ type: "x", message: "cyclic", detail: cyclic });
    store.flush();
    expect(store.query({ limit: 1 }).data[0]!.message).toBe("cyclic");
    store.close();
  });
});
