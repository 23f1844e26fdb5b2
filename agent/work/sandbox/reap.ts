/**
 * Finding a task's processes by what they carry rather than by parentage: every process a task starts
 * inherits `SAM_TASK_ID=<id>` in its environment (child-env.ts), and a `setsid`/double-fork daemon keeps it
 * while it loses its parent and process group. Used where no PID namespace holds the task — with the sandbox
 * off, and after an agent restart. Best effort by nature: a process that rewrites its environment and leaves
 * the workspace is not found (docs/sandbox.md says so).
 */
import { nodeFs } from "../../runtime/lazy-node-modules.ts";

function belongsTo(pid: number, marker: string, workspace: string): boolean {
  const fs = nodeFs();
  try {
    if (fs.readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(marker)) return true;
  } catch {
    // gone, or not ours to read
  }
  try {
    const cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
    return cwd === workspace || cwd.startsWith(workspace + "/");
  } catch {
    return false;
  }
}

/** The live processes of a task, found in /proc. */
export function taskProcesses(taskId: string, workspace: string): number[] {
  const marker = `SAM_TASK_ID=${taskId}`;
  const out: number[] = [];
  let names: string[];
  try {
    names = nodeFs().readdirSync("/proc");
  } catch {
    return out; // no /proc: nothing to find
  }
  for (const name of names) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue;
    if (belongsTo(pid, marker, workspace)) out.push(pid);
  }
  return out;
}

/**
 * SIGKILL every process of the task, scanning again until a scan finds none (a process may fork between a
 * scan and its kill); returns how many were killed.
 */
export function reapTask(taskId: string, workspace: string, rounds = 20): number {
  let killed = 0;
  for (let i = 0; i < rounds; i++) {
    const pids = taskProcesses(taskId, workspace);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
        killed++;
      } catch {
        // already gone
      }
    }
  }
  return killed;
}
