import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAX_LINE, runInGroup } from "./process-group.ts";
import { until } from "../testing/fake-edge.ts";
import { processRunning } from "../../shared/process.ts";

const env = { PATH: process.env.PATH ?? "/usr/bin:/bin" };

/** Running, not a zombie waiting for a reaper (PID 1 in a container may never reap it). */

describe("runInGroup", () => {
  test("streams stdout and stderr as lines, in order per stream, and returns the exit code", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sam-pg-"));
    try {
      const lines: string[] = [];
      const run = await runInGroup(["sh", "-c", "echo one; echo two >&2; printf 'three'; exit 3"], {
        cwd: dir,
        env,
        onLine: (s, l) => lines.push(`${s}:${l}`),
      });
      expect(run.exitCode).toBe(3);
      expect(lines.filter((l) => l.startsWith("stdout"))).toEqual(["stdout:one", "stdout:three"]);
      expect(lines).toContain("stderr:two");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("splits an over-long line instead of dropping it", async () => {
    const lines: string[] = [];
    await runInGroup(["sh", "-c", `head -c ${MAX_LINE + 10} /dev/zero | tr '\\0' x; echo`], {
      cwd: tmpdir(),
      env,
      onLine: (_s, l) => lines.push(l),
    });
    expect(lines.map((l) => l.length)).toEqual([MAX_LINE, 10]);
  });

  test("abort kills the whole process group, the shell's background children included", async () => {
    const ctl = new AbortController();
    let child = 0;
    const done = runInGroup(["sh", "-c", "sleep 60 & echo $!; wait"], {
      cwd: tmpdir(),
      env,
      signal: ctl.signal,
      killGraceMs: 500,
      onLine: (_s, l) => {
        child = Number(l);
      },
    });
    await until("the background child", () => child > 0 && processRunning(child));
    ctl.abort();
    const run = await done;
    expect(run.aborted).toBe(true);
    expect(run.exitCode).toBeNull();
    await until("the child to die", () => !processRunning(child), 3_000);
  }, 10_000);

  test("a timeout ends the command and says so", async () => {
    const run = await runInGroup(["sh", "-c", "sleep 60"], {
      cwd: tmpdir(),
      env,
      timeoutMs: 200,
      killGraceMs: 200,
      onLine: () => {},
    });
    expect(run.timedOut).toBe(true);
    expect(run.signalCode).toBe("SIGTERM");
    expect(run.durationMs).toBeLessThan(5_000);
  }, 10_000);

  test("processes left in the background after the command exits are killed, so the run ends", async () => {
    let child = 0;
    const run = await runInGroup(["sh", "-c", "sleep 60 & echo $!"], {
      cwd: tmpdir(),
      env,
      onLine: (_s, l) => {
        child = Number(l);
      },
    });
    expect(run.exitCode).toBe(0);
    await until("the straggler to die", () => child > 0 && !processRunning(child), 3_000);
  }, 10_000);
});
