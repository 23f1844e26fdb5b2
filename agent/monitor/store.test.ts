import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MetricsSample } from "../../shared/wire/metrics.ts";
import { MetricsStore } from "./store.ts";

const dir = mkdtempSync(join(tmpdir(), "sam-metrics-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sample = (at: number): MetricsSample => ({
  at,
  cpuPercent: 12.5,
  load1: 0.1,
  load5: 0.2,
  load15: 0.3,
  memTotalBytes: 8e9,
  memUsedBytes: 2e9,
  swapTotalBytes: 0,
  swapUsedBytes: 0,
  disk: { path: "/", totalBytes: 80e9, usedBytes: 30e9, freeBytes: 50e9 },
});

test("retention deletes only samples older than the cutoff (samples has no rowid: it is keyed by time)", async () => {
  const store = new MetricsStore(join(dir, "metrics.db"));
  const DAY = 86_400_000;
  const now = 100 * DAY;
  // Nine days of hourly samples: two days are past a 7-day retention.
  for (let at = now - 9 * DAY; at < now; at += 3_600_000) store.add(sample(at));
  const removed = await store.prune(now - 7 * DAY);
  expect(removed).toBe(48);
  const left = store.list({ limit: 10_000 });
  expect(left.length).toBe(7 * 24);
  expect(left[0]!.at).toBe(now - 7 * DAY);
  store.close();
});
