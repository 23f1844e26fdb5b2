/**
 * Exports of a database large enough to be streamed from its frozen main file (not copied into memory),
 * while writes continue: the download is the database as it was at the request, intact, with every
 * event committed before it and none torn; a slow reader does not change that; the database is released
 * afterwards; a second export in flight falls back to a copy and is just as valid.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventStore } from "../events/store.ts";
import { MetricsStore } from "../monitor/store.ts";
import { createAgentApp } from "./app.ts";
import { until } from "../../shared/testing/until.ts";

const TOKEN = "samagent_export_test_0123456789";
const dir = mkdtempSync(join(tmpdir(), "sam-agent-export-"));
const events = new EventStore(join(dir, "events.db"), { nodeId: "node-x" });
const metrics = new MetricsStore(join(dir, "metrics.db"));
const app = createAgentApp({
  nodeId: "node-x",
  agentToken: TOKEN,
  version: "1",
  startedAt: Date.now(),
  events,
  metrics,
  boot: () => null,
  exportDir: dir,
});
const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: app.fetch });
const PADDING = "x".repeat(200);
let recorded = 0;
const record = (n: number) => {
  for (let i = 0; i < n; i++) {
    events.record({ type: "task.output", message: `line ${++recorded} ${PADDING}`, taskId: "t1" });
  }
};

beforeAll(() => {
  record(30_000); // ≈ 9 MiB: above the in-memory limit, so the main file itself is streamed
  events.flush();
});
afterAll(() => {
  server.stop(true);
  events.close();
  metrics.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Download with curl, in a separate process like a real client. */
async function download(file: string): Promise<{ status: number; length: number }> {
  const args = [
    "curl",
    "-sS",
    "-o",
    file,
    "-w",
    "%{http_code} %header{content-length}",
    "-H",
    `Authorization: Bearer ${TOKEN}`,
  ];
  const proc = Bun.spawn([...args, `http://127.0.0.1:${server.port}/events/export`], {
    stdout: "pipe",
    stderr: "inherit",
  });
  const [status, length] = (await new Response(proc.stdout).text()).split(" ").map(Number);
  await proc.exited;
  return { status: status!, length: length! };
}

/**
 * A client that reads `chunk` bytes at a time with a pause in between (the socket stops reading, so the
 * kernel's buffers fill and the transfer really takes that long). Resolves to the body and its header.
 */
function slowDownload(chunk: number, pauseMs: number): Promise<{ length: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    const socket = connect(server.port!, "127.0.0.1", () => {
      socket.write(
        `GET /events/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`,
      );
    });
    let since = 0;
    socket.on("data", (data: Buffer) => {
      parts.push(data);
      since += data.length;
      if (since >= chunk) {
        since = 0;
        socket.pause();
        setTimeout(() => socket.resume(), pauseMs);
      }
    });
    socket.on("error", reject);
    socket.on("end", () => {
      const all = Buffer.concat(parts);
      const split = all.indexOf("\r\n\r\n");
      const head = all.subarray(0, split).toString();
      if (!head.startsWith("HTTP/1.1 200")) return reject(new Error(head.split("\r\n")[0]));
      resolve({ length: Number(/content-length: (\d+)/i.exec(head)?.[1]), body: all.subarray(split + 4) });
    });
  });
}

/** The downloaded file passes integrity_check and holds events 1..n with no gap; returns n. */
function checkDownload(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    expect(db.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
    const { n, top, last } = db.query(
      "SELECT count(*) AS n, max(id) AS top, (SELECT message FROM events ORDER BY id DESC LIMIT 1) AS last FROM events",
    ).get() as { n: number; top: number; last: string };
    expect(top).toBe(n);
    expect(last).toBe(`line ${n} ${PADDING}`);
    return n;
  } finally {
    db.close();
  }
}

const pinned = () => (events as unknown as { snapshots: { pinned: boolean } }).snapshots.pinned;

test("an export during a write burst is the database at the request: intact, nothing committed missing", async () => {
  const writer = setInterval(() => record(200), 5); // ≈ 40,000 events/s
  try {
    for (let round = 0; round < 3; round++) {
      const committedBefore = recorded;
      const file = join(dir, `burst-${round}.db`);
      const { status, length } = await download(file);
      const recordedAfter = recorded;
      expect(status).toBe(200);
      expect(statSync(file).size).toBe(length);
      const n = checkDownload(file);
      expect(n).toBeGreaterThanOrEqual(committedBefore);
      expect(n).toBeLessThanOrEqual(recordedAfter);
      rmSync(file);
    }
  } finally {
    clearInterval(writer);
  }
  events.flush();
  expect(recorded).toBeGreaterThan(30_000);
  expect(readdirSync(dir).filter((f) => f.startsWith(".export-"))).toEqual([]);
}, 20_000);

test(
  "a slow reader gets the snapshot of its request while the WAL grows past checkpoint size, then the database is released",
  async () => {
    await until("the earlier downloads to release the database", () => !pinned());
    const file = join(dir, "slow.db");
    const committedBefore = recorded;
    const writer = setInterval(() => record(100), 5);
    const slow = slowDownload(512 * 1024, 100); // ≥ 2 s for the ≈ 10 MiB file
    await until("the download to start", () => pinned());
    const recordedAfterHeaders = recorded;
    const { length, body } = await slow;
    clearInterval(writer);
    events.flush();
    expect(body.length).toBe(length);
    writeFileSync(file, body);
    const n = checkDownload(file);
    expect(n).toBeGreaterThanOrEqual(committedBefore);
    expect(n).toBeLessThanOrEqual(recordedAfterHeaders);
    // The writes went on meanwhile, and more than an autocheckpoint's worth (1,000 pages) of them.
    expect(recorded - n).toBeGreaterThan(10_000);
    await until("the snapshot to be released", () => !pinned());
    // Released: the next commit's autocheckpoint catches the main file up, and the live database has it all.
    record(1);
    events.flush();
    expect(events.query({ limit: 1, afterId: recorded - 1 }).data[0]!.message).toBe(`line ${recorded} ${PADDING}`);
    rmSync(file);
  },
  20_000,
);

test("two exports at once: the second is copied instead, and both are valid", async () => {
  await until("the earlier downloads to release the database", () => !pinned());
  const writer = setInterval(() => record(100), 5);
  try {
    const [a, b] = await Promise.all([
      slowDownload(1024 * 1024, 100),
      (async () => {
        await until("the first download to hold the main file", () => pinned());
        return download(join(dir, "b.db"));
      })(),
    ]);
    expect(a.body.length).toBe(a.length);
    expect(b.status).toBe(200);
    writeFileSync(join(dir, "a.db"), a.body);
    const na = checkDownload(join(dir, "a.db"));
    const nb = checkDownload(join(dir, "b.db"));
    expect(nb).toBeGreaterThan(na);
  } finally {
    clearInterval(writer);
  }
  expect(readdirSync(dir).filter((f) => f.startsWith(".export-"))).toEqual([]);
}, 20_000);
