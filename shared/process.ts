/** Whether a process is still there, for code and tests that start and stop processes (Node APIs: Bun and Deno). */
import { readFileSync } from "node:fs";

/** The pid names a process this user may signal — including a zombie that has exited but is not yet reaped. */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The process exists and has not exited (a zombie, state `Z` in /proc/<pid>/stat, has). Linux only. */
export function processRunning(pid: number): boolean {
  if (!processExists(pid)) return false;
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}
