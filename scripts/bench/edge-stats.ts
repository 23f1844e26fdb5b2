/** What the edge and database benchmarks share: their flags, percentiles and medians, a process's CPU time. */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** `--name value` from the command line, or the fallback. */
export const flag = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"]).stdout.toString().trim()) || 100;

/** CPU time (user + system) a process has used so far, in µs: the steady measure beside the wall-clock ones. */
export function cpuMicros(pid: number): number {
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1e6;
}

/** Percentiles. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function summary(samples: number[]): { n: number; p50: number; p90: number; p99: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99) };
}

/**
 * Context switches of a process so far, summed over its threads: voluntary (it waited: a wake-up each) and
 * involuntary (the scheduler took its core for another runnable thread).
 */
export function contextSwitches(pid: number): { voluntary: number; involuntary: number } {
  let voluntary = 0;
  let involuntary = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    let status: string;
    try {
      status = readFileSync(`/proc/${pid}/task/${t}/status`, "utf8");
    } catch {
      continue; // the thread ended meanwhile
    }
    voluntary += Number(status.match(/^voluntary_ctxt_switches:\s+(\d+)$/m)?.[1] ?? 0);
    involuntary += Number(status.match(/^nonvoluntary_ctxt_switches:\s+(\d+)$/m)?.[1] ?? 0);
  }
  return { voluntary, involuntary };
}
