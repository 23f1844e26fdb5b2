import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ConfigError } from "./env.ts";
import {
  DEFAULT_TIMEOUTS,
  deriveTimeouts,
  type Timeouts,
  timeoutsFromEnv,
  timeoutViolations,
  TIMER_BASES,
  TIMER_OVERRIDES,
  type TimerBase,
} from "./timeouts.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;

/** The orderings the runner and the sweep rely on, stated independently of the implementation's checks. */
function assertSafe(t: Timeouts) {
  expect(t.stuckQueued).toBeGreaterThan(t.agentReady + t.tick);
  expect(t.stuckQueued).toBeGreaterThan(t.queueWait + t.tick);
  expect(t.stuckDispatched).toBeGreaterThan(t.dispatch + t.tick);
  expect(t.stuckRunning).toBeGreaterThan(t.taskRun + t.tick);
  expect(t.nodeStale).toBeGreaterThan(2 * t.heartbeat);
  expect(t.nodeUnhealthy).toBeGreaterThan(t.nodeStale);
  expect(t.readyRetryMax).toBeLessThanOrEqual(t.heartbeat);
  expect(t.nodeWarm).toBeGreaterThan(t.tick);
}

const duration = (min: number, max: number) => fc.integer({ min, max });
const basesArb = fc.record({
  agentReady: duration(10 * SECOND, 2 * 3600 * SECOND),
  heartbeat: duration(1 * SECOND, 5 * MINUTE),
  buffer: duration(1 * SECOND, 60 * MINUTE),
  tick: duration(1 * SECOND, 10 * MINUTE),
  dispatch: duration(1 * SECOND, 10 * MINUTE),
  taskRun: duration(1 * SECOND, 24 * 3600 * SECOND),
  nodeWarm: duration(1 * SECOND, 24 * 3600 * SECOND),
  retryBackoff: duration(100, 60 * SECOND),
  responseRetention: duration(1 * SECOND, 24 * 3600 * SECOND),
  inferenceIdle: duration(1 * SECOND, 10 * MINUTE),
  clientBody: duration(SECOND, 10 * MINUTE),
  adminSession: duration(MINUTE, 24 * 3600 * SECOND),
}) satisfies fc.Arbitrary<Record<TimerBase, number>>;

const env = (values: Record<string, number>) =>
  Object.fromEntries(Object.entries(values).map(([k, ms]) => [k, `${ms}ms`]));

describe("timeout table", () => {
  test("defaults match the design: 15 min boot budget, 20 min stuck sweep, stale after 3 heartbeats", () => {
    expect(DEFAULT_TIMEOUTS.agentReady).toBe(15 * MINUTE);
    expect(DEFAULT_TIMEOUTS.stuckQueued).toBe(20 * MINUTE);
    expect(DEFAULT_TIMEOUTS.nodeStale).toBe(3 * DEFAULT_TIMEOUTS.heartbeat);
    expect(timeoutViolations(DEFAULT_TIMEOUTS)).toEqual([]);
    assertSafe(DEFAULT_TIMEOUTS);
  });

  test("property: every configuration the validator accepts keeps the orderings", () => {
    fc.assert(
      fc.property(
        basesArb,
        fc.option(duration(1 * SECOND, 4 * 3600 * SECOND), { nil: undefined }),
        fc.option(duration(1 * SECOND, 30 * MINUTE), { nil: undefined }),
        (bases, stuckQueued, nodeStale) => {
          const vars: Record<string, number> = {};
          for (const [k, ms] of Object.entries(bases)) vars[TIMER_BASES[k as TimerBase].env] = ms;
          if (stuckQueued !== undefined) vars[TIMER_OVERRIDES.stuckQueued.env] = stuckQueued;
          if (nodeStale !== undefined) vars[TIMER_OVERRIDES.nodeStale.env] = nodeStale;
          let table: Timeouts;
          try {
            table = timeoutsFromEnv(env(vars));
          } catch (err) {
            expect(err).toBeInstanceOf(ConfigError);
            // Refused configurations really break an ordering.
            expect(timeoutViolations(deriveTimeouts(bases, { stuckQueued, nodeStale })).length).toBeGreaterThan(0);
            return;
          }
          assertSafe(table);
        },
      ),
      { numRuns: 2000 },
    );
  });

  test("property: with no explicit overrides, derivation alone only fails on base values that are themselves contradictory", () => {
    fc.assert(
      fc.property(basesArb, (bases) => {
        const t = deriveTimeouts(bases);
        // The sweep is derived as deadline + buffer, so it is safe exactly when buffer > tick.
        const sweepSafe = t.stuckQueued > t.agentReady + t.tick;
        expect(sweepSafe).toBe(bases.buffer > bases.tick);
      }),
      { numRuns: 1000 },
    );
  });

  test("the slow-boot incident's configuration (stuck sweep 10 min, boot budget 15 min) is refused with one clear line", () => {
    expect(() => timeoutsFromEnv({ SAM_STUCK_QUEUED_TIMEOUT: "10m" })).toThrow(
      /^SAM_STUCK_QUEUED_TIMEOUT \(10m\) must exceed SAM_AGENT_READY_TIMEOUT \+ SAM_TICK_INTERVAL \(915s\): the stuck-task sweep would kill tasks/,
    );
  });

  test("a sweep override above the boot budget is accepted and derived values follow the bases", () => {
    const t = timeoutsFromEnv({
      SAM_AGENT_READY_TIMEOUT: "20m",
      SAM_STUCK_QUEUED_TIMEOUT: "30m",
      SAM_HEARTBEAT_INTERVAL: "10s",
    });
    expect(t.agentReady).toBe(20 * MINUTE);
    expect(t.queueWait).toBe(20 * MINUTE);
    expect(t.stuckQueued).toBe(30 * MINUTE);
    expect(t.nodeStale).toBe(30 * SECOND);
  });

  test("non-durations name the variable", () => {
    expect(() => timeoutsFromEnv({ SAM_AGENT_READY_TIMEOUT: "fifteen" })).toThrow(
      "SAM_AGENT_READY_TIMEOUT: expected a positive duration like 90s, 15m or 1h, got 'fifteen'",
    );
    expect(() => timeoutsFromEnv({ SAM_HEARTBEAT_INTERVAL: "0" })).toThrow(/^SAM_HEARTBEAT_INTERVAL: /);
    expect(() => timeoutsFromEnv({ SAM_TIMEOUT_BUFFER: "10s", SAM_TICK_INTERVAL: "30s" })).toThrow(
      /^SAM_TIMEOUT_BUFFER \(10s\) must exceed SAM_TICK_INTERVAL/,
    );
  });
});
