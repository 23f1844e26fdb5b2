/**
 * The resource charts' geometry: a window's samples reduced to at most a few hundred points (a 7-day window
 * holds ~10,000 one-minute samples) and scaled into an SVG viewBox. Gaps (a null value, e.g. the first CPU
 * sample) break the line instead of being drawn as zero.
 */
import type { MetricsSample } from "../../shared/wire/metrics.ts";

export { METRICS_WINDOWS as WINDOWS, type MetricsWindow } from "../../shared/wire/metrics.ts";

export type Point = { at: number; value: number | null };

/** The three charts: each is a percentage of its resource, so all share a 0–100 scale. */
export const SERIES = {
  cpu: { title: "CPU", value: (s: MetricsSample) => s.cpuPercent },
  memory: {
    title: "Memory",
    value: (s: MetricsSample) => (s.memTotalBytes > 0 ? (s.memUsedBytes / s.memTotalBytes) * 100 : null),
  },
  disk: {
    title: "Disk /",
    value: (s: MetricsSample) => (s.disk.totalBytes > 0 ? (s.disk.usedBytes / s.disk.totalBytes) * 100 : null),
  },
} as const;
export type SeriesName = keyof typeof SERIES;

/** Averages consecutive samples into at most `max` points; a bucket of only nulls stays a gap. */
export function downsample(points: Point[], max: number): Point[] {
  if (points.length <= max) return points;
  const size = Math.ceil(points.length / max);
  const out: Point[] = [];
  for (let i = 0; i < points.length; i += size) {
    const bucket = points.slice(i, i + size);
    const values = bucket.map((p) => p.value).filter((v): v is number => v !== null);
    const mid = bucket[Math.floor(bucket.length / 2)]!;
    out.push({ at: mid.at, value: values.length ? values.reduce((a, b) => a + b, 0) / values.length : null });
  }
  return out;
}

export type ChartBox = { width: number; height: number; from: number; to: number; yMax: number };

/** Points scaled into the box (y grows downwards), split into line segments at gaps. */
export function chartSegments(points: Point[], box: ChartBox): { x: number; y: number; value: number }[][] {
  const span = Math.max(box.to - box.from, 1);
  const segments: { x: number; y: number; value: number }[][] = [];
  let current: { x: number; y: number; value: number }[] = [];
  for (const p of points) {
    if (p.value === null) {
      if (current.length) segments.push(current);
      current = [];
      continue;
    }
    const x = ((p.at - box.from) / span) * box.width;
    const y = box.height - (Math.min(Math.max(p.value, 0), box.yMax) / box.yMax) * box.height;
    current.push({ x: round(x), y: round(y), value: p.value });
  }
  if (current.length) segments.push(current);
  return segments;
}

const round = (n: number) => Math.round(n * 10) / 10;
