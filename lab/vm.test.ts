import { describe, expect, test } from "bun:test";
import { parseProbe } from "./vm.ts";

const block = (active: string, restarts: number) =>
  `=====BEGIN\r\nActiveState=${active}\r\nSubState=running\r\nNRestarts=${restarts}\r\n--journal--\r\n{"MESSAGE":"x"}\r\n--files--\r\n--bootlogs--\r\ntail\r\n=====END\r\n`;

describe("the lab's guest probe log", () => {
  test("reads the last complete block", () => {
    const s = parseProbe(block("activating", 0) + block("active", 0));
    expect(s?.activeState).toBe("active");
    expect(s?.restarts).toBe(0);
    expect(s?.journal).toBe('{"MESSAGE":"x"}\n');
  });

  test("a block still being written does not hide the one before it", () => {
    // What the failing scenario's check read in CI: the probe had begun the next block when the lab looked.
    const s = parseProbe(block("active", 0) + "=====BEGIN\r\nActiveState=act");
    expect(s?.activeState).toBe("active");
  });

  test("nothing complete yet is null", () => {
    expect(parseProbe("")).toBeNull();
    expect(parseProbe("=====BEGIN\r\nActiveState=act")).toBeNull();
  });
});
