import { describe, expect, test } from "bun:test";
import { chartSegments, downsample } from "./series.ts";

describe("chart series", () => {
  test("downsampling averages buckets and keeps short series as they are", () => {
    const pts = Array.from({ length: 10 }, (_, i) => ({ at: i, value: i }));
    expect(downsample(pts, 20)).toBe(pts);
    const out = downsample(pts, 5);
    expect(out.map((p) => p.value)).toEqual([0.5, 2.5, 4.5, 6.5, 8.5]);
  });

  test("a null value breaks the line; values are scaled into the box with y growing down", () => {
    const segs = chartSegments(
      [{ at: 0, value: 0 }, { at: 50, value: 50 }, { at: 60, value: null }, { at: 100, value: 100 }],
      { width: 200, height: 100, from: 0, to: 100, yMax: 100 },
    );
    expect(segs).toEqual([
      [{ x: 0, y: 100, value: 0 }, { x: 100, y: 50, value: 50 }],
      [{ x: 200, y: 0, value: 100 }],
    ]);
  });
});
