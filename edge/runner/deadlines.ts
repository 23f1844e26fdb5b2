/**
 * The runner's deadline and the sweep's limit for a task in a phase, both from the one timer table
 * (docs/timeouts.md). Pure, so a property test can prove the sweep never fires before the runner.
 */
import { formatDuration } from "../../shared/duration.ts";
import type { Timeouts } from "../../shared/timeouts.ts";
import type { TaskStatus } from "../../shared/wire/task.ts";

export type ActiveStatus = Exclude<TaskStatus, "succeeded" | "failed" | "cancelled">;

export type Deadline = {
  at: number;
  /** The timer's name in the table, e.g. `agentReady`. */
  timer: keyof Timeouts;
  /** What ran out, for the failure reason: "agent not ready after 15m (boot budget)". */
  describe: string;
};

/**
 * The runner's deadline for a task that entered `status` at `enteredAt`. The boot budget runs from the
 * node's creation (the boot budget runs from node create to the agent's ready callback), never later than phase entry.
 */
export function runnerDeadline(
  status: ActiveStatus,
  enteredAt: number,
  t: Timeouts,
  nodeCreatedAt?: number | null,
): Deadline {
  const fmt = formatDuration;
  switch (status) {
    case "queued":
      return {
        at: enteredAt + t.queueWait,
        timer: "queueWait",
        describe: `no node available after ${fmt(t.queueWait)} (queue wait)`,
      };
    case "provisioning":
    case "waiting_for_agent": {
      const from = Math.min(nodeCreatedAt ?? enteredAt, enteredAt);
      return {
        at: from + t.agentReady,
        timer: "agentReady",
        describe: `agent not ready after ${fmt(t.agentReady)} (boot budget)`,
      };
    }
    case "dispatched":
      return {
        at: enteredAt + t.dispatch,
        timer: "dispatch",
        describe: `agent did not accept the task within ${fmt(t.dispatch)} (dispatch timeout)`,
      };
    case "running":
      return {
        at: enteredAt + t.taskRun,
        timer: "taskRun",
        describe: `task still running after ${fmt(t.taskRun)} (run timeout)`,
      };
  }
}

/** The sweep's limit: the safety net for a runner that did not act (an edge that was down, a lost callback). */
export function sweepDeadline(status: ActiveStatus, enteredAt: number, t: Timeouts): Deadline {
  const fmt = formatDuration;
  switch (status) {
    case "queued":
    case "provisioning":
    case "waiting_for_agent":
      return {
        at: enteredAt + t.stuckQueued,
        timer: "stuckQueued",
        describe: `stuck in ${status} for ${fmt(t.stuckQueued)} (stuck-task sweep)`,
      };
    case "dispatched":
      return {
        at: enteredAt + t.stuckDispatched,
        timer: "stuckDispatched",
        describe: `stuck in dispatched for ${fmt(t.stuckDispatched)} (stuck-task sweep)`,
      };
    case "running":
      return {
        at: enteredAt + t.stuckRunning,
        timer: "stuckRunning",
        describe: `stuck in running for ${fmt(t.stuckRunning)} (stuck-task sweep)`,
      };
  }
}

export const SWEEP_LIMITS: Record<ActiveStatus, keyof Timeouts> = {
  queued: "stuckQueued",
  provisioning: "stuckQueued",
  waiting_for_agent: "stuckQueued",
  dispatched: "stuckDispatched",
  running: "stuckRunning",
};
