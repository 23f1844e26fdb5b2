/** One resource-monitor sample (docs/agent.md), as stored, served and heartbeated. */
import * as v from "valibot";
import { EpochMs, NonNegativeInt } from "./common.ts";

const Percent = v.pipe(v.number(), v.minValue(0), v.maxValue(100));
const Bytes = NonNegativeInt;
const Disk = v.object({ path: v.string(), totalBytes: Bytes, usedBytes: Bytes, freeBytes: Bytes });

export const MetricsSample = v.object({
  at: EpochMs,
  /** Null on the first sample, which has no earlier /proc/stat to take a delta from. */
  cpuPercent: v.nullable(Percent),
  load1: v.number(),
  load5: v.number(),
  load15: v.number(),
  memTotalBytes: Bytes,
  memUsedBytes: Bytes,
  swapTotalBytes: Bytes,
  swapUsedBytes: Bytes,
  disk: Disk,
  /** The data dir's filesystem, when it differs from `/`. */
  dataDisk: v.optional(v.nullable(Disk)),
  netRxBytes: v.optional(v.nullable(Bytes)),
  netTxBytes: v.optional(v.nullable(Bytes)),
});
export type MetricsSample = v.InferOutput<typeof MetricsSample>;

/** The time windows metrics are served and charted for (`?window=`), in milliseconds. */
export const METRICS_WINDOWS = { "1h": 3_600_000, "24h": 86_400_000, "7d": 604_800_000 } as const;
export type MetricsWindow = keyof typeof METRICS_WINDOWS;
