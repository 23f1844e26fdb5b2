import { expect, test } from "bun:test";
import fc from "fast-check";
import { formatDuration, parseDuration } from "./duration.ts";

test("parses units and bare seconds", () => {
  expect(parseDuration("500ms")).toBe(500);
  expect(parseDuration("90s")).toBe(90_000);
  expect(parseDuration("15m")).toBe(900_000);
  expect(parseDuration("2h")).toBe(7_200_000);
  expect(parseDuration("7d")).toBe(604_800_000);
  expect(parseDuration("30")).toBe(30_000);
  expect(parseDuration("1.5s")).toBe(1500);
});

test("refuses what is not a duration", () => {
  for (const bad of ["", "15 min", "-5s", "abc", "5x", "m", "1e3"]) expect(parseDuration(bad)).toBeNull();
});

test("property: format then parse is the identity", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 10 ** 10 }), (ms) => {
    expect(parseDuration(formatDuration(ms))).toBe(ms);
  }));
});
