import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { MetricsSample } from "../../shared/wire/metrics.ts";
import type { EventInput } from "../contracts.ts";
import { ResourceMonitor } from "./monitor.ts";
import { MetricsStore } from "./store.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup(procRoot?: string) {
  const dir = mkdtempSync(join(tmpdir(), "sam-monitor-"));
  dirs.push(dir);
  const store = new MetricsStore(join(dir, "metrics.db"));
  const events: EventInput[] = [];
  let clock = 1_000_000;
  const monitor = new ResourceMonitor({
    store,
    events: { record: (e) => events.push(e) },
    intervalMs: 60_000,
    dataDir: dir,
    procRoot,
    now: () => (clock += 60_000),
  });
  return { dir, store, events, monitor };
}

describe("ResourceMonitor", () => {
  test("samples this machine: the first has no CPU figure, the next one does; all valid wire samples", async () => {
    const { store, monitor } = setup();
    const first = (await monitor.tick())!;
    expect(first.cpuPercent).toBeNull();
    expect(v.is(MetricsSample, first)).toBe(true);
    expect(first.memTotalBytes).toBeGreaterThan(first.memUsedBytes);
    expect(first.disk.path).toBe("/");
    expect(first.disk.totalBytes).toBeGreaterThan(first.disk.freeBytes);
    const second = (await monitor.tick())!;
    expect(second.cpuPercent === null || (second.cpuPercent >= 0 && second.cpuPercent <= 100)).toBe(true);
    expect(monitor.latest()).toEqual(second);
    expect(store.list({ limit: 10 })).toEqual([first, second]);
    store.close();
  });

  test("list returns the newest samples in the window, oldest first", async () => {
    const { store, monitor } = setup();
    const all: MetricsSample[] = [];
    for (let i = 0; i < 4; i++) all.push((await monitor.tick())!);
    expect(store.list({ limit: 2 }).map((s) => s.at)).toEqual([all[2]!.at, all[3]!.at]);
    expect(store.list({ since: all[1]!.at, until: all[3]!.at, limit: 10 }).map((s) => s.at)).toEqual([
      all[1]!.at,
      all[2]!.at,
    ]);
    store.close();
  });

  test("a /proc with missing files still yields a sample (zeros, nulls) instead of stopping the monitor", async () => {
    const proc = mkdtempSync(join(tmpdir(), "sam-proc-"));
    dirs.push(proc);
    mkdirSync(join(proc, "net"));
    writeFileSync(join(proc, "meminfo"), "MemTotal: 1000 kB\nMemFree: 500 kB\n");
    const { store, monitor, events } = setup(proc);
    const s = (await monitor.tick())!;
    expect(s.memTotalBytes).toBe(1000 * 1024);
    expect(s.load1).toBe(0);
    expect(s.netRxBytes).toBeNull();
    expect(events).toEqual([]);
    store.close();
  });

  test("a sample still reading when the monitor stops is dropped, not written to the closing store", async () => {
    const { store, monitor, events } = setup();
    const pending = monitor.tick();
    monitor.stop();
    expect(await pending).toBeNull();
    expect(store.list({ limit: 10 })).toEqual([]);
    expect(events).toEqual([]);
    store.close();
  });

  test("a failing store is recorded as one error event, not thrown", async () => {
    const { store, monitor, events } = setup();
    store.close();
    const real = store.add.bind(store);
    store.add = () => {
      throw new Error("disk I/O error");
    };
    expect(await monitor.tick()).toBeNull();
    expect(await monitor.tick()).toBeNull();
    expect(events.map((e) => e.message)).toEqual(["resource monitor: disk I/O error"]);
    store.add = real;
  });
});
