// Property: for every timer table the validator accepts, the stuck-task sweep never fires before the runner.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { DEFAULT_TIMEOUTS, deriveTimeouts, timeoutViolations, type TimerBase } from "../../shared/timeouts.ts";
import { type ActiveStatus, runnerDeadline, sweepDeadline } from "./deadlines.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const d = (min: number, max: number) => fc.integer({ min, max });
const basesArb = fc.record({
  agentReady: d(10 * SECOND, 2 * 3600 * SECOND),
  heartbeat: d(SECOND, 5 * MINUTE),
  buffer: d(SECOND, 60 * MINUTE),
  tick: d(SECOND, 10 * MINUTE),
  dispatch: d(SECOND, 10 * MINUTE),
  taskRun: d(SECOND, 24 * 3600 * SECOND),
  nodeWarm: d(SECOND, 24 * 3600 * SECOND),
  retryBackoff: d(100, 60 * SECOND),
  responseRetention: d(SECOND, 24 * 3600 * SECOND),
  inferenceIdle: d(SECOND, 10 * MINUTE),
  clientBody: d(SECOND, 10 * MINUTE),
  adminSession: d(MINUTE, 24 * 3600 * SECOND),
}) satisfies fc.Arbitrary<Record<TimerBase, number>>;
const statusArb = fc.constantFrom<ActiveStatus>("queued", "provisioning", "waiting_for_agent", "dispatched", "running");

describe("runner deadlines and the sweep", () => {
  test("the sweep fires at least one tick after the runner's deadline, for every accepted table", () => {
    fc.assert(
      fc.property(
        basesArb,
        fc.option(d(SECOND, 3 * 3600 * SECOND), { nil: undefined }),
        statusArb,
        d(0, 2e12),
        d(0, 3600 * SECOND),
        (bases, stuckQueued, status, enteredAt, nodeAge) => {
          const t = deriveTimeouts(bases, stuckQueued === undefined ? {} : { stuckQueued });
          fc.pre(timeoutViolations(t).length === 0);
          const runner = runnerDeadline(status, enteredAt, t, enteredAt - nodeAge);
          const sweep = sweepDeadline(status, enteredAt, t);
          expect(sweep.at).toBeGreaterThan(runner.at + t.tick);
        },
      ),
      { numRuns: 2_000 },
    );
  });

  test("reasons name the timer and the phase", () => {
    const t = DEFAULT_TIMEOUTS;
    expect(runnerDeadline("waiting_for_agent", 0, t).describe).toBe("agent not ready after 15m (boot budget)");
    expect(runnerDeadline("provisioning", 1000, t, 0).at).toBe(15 * MINUTE); // the boot budget runs from node creation
    expect(runnerDeadline("dispatched", 0, t).describe).toBe(
      "agent did not accept the task within 30s (dispatch timeout)",
    );
    expect(runnerDeadline("running", 0, t)).toMatchObject({ at: 60 * MINUTE, timer: "taskRun" });
    expect(sweepDeadline("queued", 0, t)).toMatchObject({ at: 20 * MINUTE, timer: "stuckQueued" });
  });
});
