/**
 * Every timer in SAM, derived from a few base values (docs/timeouts.md).
 *
 * The slow-boot incident was three independent literal timers racing each other; here the runner's deadlines and
 * the stuck-task sweep that backs them up come from the same base values, and a configuration that would
 * let the sweep fire before the runner's own deadline is refused at start.
 */
import { formatDuration } from "./duration.ts";
import { ConfigError, type Env, envDuration } from "./env.ts";

const SECOND = 1_000;
const MINUTE = 60 * SECOND;

/** The base values an operator sets. Everything else is derived from these. */
export const TIMER_BASES = {
  agentReady: {
    env: "SAM_AGENT_READY_TIMEOUT",
    default: 15 * MINUTE,
    meaning: "budget for a cold boot: node create to the agent's ready callback",
  },
  heartbeat: { env: "SAM_HEARTBEAT_INTERVAL", default: 30 * SECOND, meaning: "how often an agent heartbeats" },
  buffer: {
    env: "SAM_TIMEOUT_BUFFER",
    default: 5 * MINUTE,
    meaning: "slack between a runner deadline and the sweep that backs it up",
  },
  tick: {
    env: "SAM_TICK_INTERVAL",
    default: 15 * SECOND,
    meaning: "period of the safety-net tick (Deno.cron fires at most once a minute)",
  },
  dispatch: {
    env: "SAM_DISPATCH_TIMEOUT",
    default: 30 * SECOND,
    meaning: "a ready node must accept a dispatched task within this",
  },
  taskRun: { env: "SAM_TASK_RUN_TIMEOUT", default: 60 * MINUTE, meaning: "longest a task may run on a node" },
  nodeWarm: { env: "SAM_NODE_WARM", default: 10 * MINUTE, meaning: "an idle node stays warm this long for reuse" },
  retryBackoff: {
    env: "SAM_RETRY_BACKOFF",
    default: 2 * SECOND,
    meaning: "first backoff of a transient-failure retry (doubles per attempt)",
  },
  responseRetention: {
    env: "SAM_RESPONSE_RETENTION",
    default: 60 * MINUTE,
    meaning: "a stored /v1/responses answer can be continued (previous_response_id) for this long",
  },
  inferenceIdle: {
    env: "SAM_INFERENCE_IDLE_TIMEOUT",
    default: 60 * SECOND,
    meaning: "a streamed completion whose upstream sends no byte for this long ends with an error event",
  },
  clientBody: {
    env: "SAM_CLIENT_BODY_TIMEOUT",
    default: 10 * SECOND,
    meaning: "a client must have sent its whole request body within this, else 408 and the connection is closed",
  },
  adminSession: {
    env: "SAM_ADMIN_SESSION_TTL",
    default: 12 * 60 * MINUTE,
    meaning: "an admin page session (the login cookie) expires this long after login",
  },
} as const;

/** Derived timers an operator may still override explicitly; the ordering check guards them. */
export const TIMER_OVERRIDES = {
  stuckQueued: {
    env: "SAM_STUCK_QUEUED_TIMEOUT",
    meaning: "sweep: a task not yet dispatched is failed after this long in its phase",
    derivation: "agentReady + buffer",
  },
  nodeStale: {
    env: "SAM_NODE_STALE",
    meaning: "a node with no heartbeat for this long is stale",
    derivation: "3 × heartbeat",
  },
  orphanGrace: {
    env: "SAM_ORPHAN_GRACE",
    meaning: "a labelled server of no live node is deleted once it is this old",
    derivation: "buffer",
  },
} as const;

export type TimerBase = keyof typeof TIMER_BASES;
export type TimerOverride = keyof typeof TIMER_OVERRIDES;

export type Timeouts =
  & {
    [K in TimerBase]: number;
  }
  & {
    /** Runner deadline for a task waiting in `queued` for a node slot. */
    queueWait: number;
    /** Sweep limit for `queued`, `provisioning` and `waiting_for_agent` (the old stuck-queued cron). */
    stuckQueued: number;
    /** Sweep limit for `dispatched`. */
    stuckDispatched: number;
    /** Sweep limit for `running`. */
    stuckRunning: number;
    nodeStale: number;
    /** A node with no heartbeat for this long is unhealthy and is not given work. */
    nodeUnhealthy: number;
    /** Cap of the agent's ready-callback backoff, so a late edge sees it within one heartbeat. */
    readyRetryMax: number;
    /** Age before the orphan reaper deletes a server carrying SAM's label that belongs to no live node. */
    orphanGrace: number;
  };

export const DERIVATIONS: Record<Exclude<keyof Timeouts, TimerBase>, string> = {
  queueWait: "agentReady",
  stuckQueued: TIMER_OVERRIDES.stuckQueued.derivation,
  stuckDispatched: "dispatch + buffer",
  stuckRunning: "taskRun + buffer",
  nodeStale: TIMER_OVERRIDES.nodeStale.derivation,
  nodeUnhealthy: "2 × nodeStale",
  readyRetryMax: "heartbeat",
  orphanGrace: TIMER_OVERRIDES.orphanGrace.derivation,
};

/** Derive the full table from base values and optional explicit overrides. Pure; does not validate. */
export function deriveTimeouts(
  bases: Record<TimerBase, number>,
  overrides: Partial<Record<TimerOverride, number>> = {},
): Timeouts {
  const nodeStale = overrides.nodeStale ?? 3 * bases.heartbeat;
  return {
    ...bases,
    queueWait: bases.agentReady,
    stuckQueued: overrides.stuckQueued ?? bases.agentReady + bases.buffer,
    stuckDispatched: bases.dispatch + bases.buffer,
    stuckRunning: bases.taskRun + bases.buffer,
    nodeStale,
    nodeUnhealthy: 2 * nodeStale,
    readyRetryMax: bases.heartbeat,
    orphanGrace: overrides.orphanGrace ?? bases.buffer,
  };
}

const fmt = formatDuration;

/**
 * The orderings that make the timers safe together. Each violation is one line naming the variables.
 * A sweep limit must exceed the runner deadline it backs up by more than one tick, so the runner (which
 * names the timer and the phase in its reason) always gets its turn first.
 */
export function timeoutViolations(t: Timeouts): string[] {
  const out: string[] = [];
  const envOf = (
    k: TimerBase | TimerOverride,
  ) => (k in TIMER_BASES ? TIMER_BASES[k as TimerBase].env : TIMER_OVERRIDES[k as TimerOverride].env);
  const mustExceed = (what: string, value: number, floorText: string, floor: number, why: string) => {
    if (!(value > floor)) out.push(`${what} (${fmt(value)}) must exceed ${floorText} (${fmt(floor)}): ${why}`);
  };
  mustExceed(
    envOf("buffer"),
    t.buffer,
    envOf("tick"),
    t.tick,
    "the sweep needs at least one tick of slack after a runner deadline",
  );
  mustExceed(
    envOf("stuckQueued"),
    t.stuckQueued,
    `${envOf("agentReady")} + ${envOf("tick")}`,
    t.agentReady + t.tick,
    "the stuck-task sweep would kill tasks the runner is still allowed to wait for",
  );
  mustExceed(
    "stuckDispatched",
    t.stuckDispatched,
    `${envOf("dispatch")} + ${envOf("tick")}`,
    t.dispatch + t.tick,
    "the sweep would pre-empt the dispatch deadline",
  );
  mustExceed(
    "stuckRunning",
    t.stuckRunning,
    `${envOf("taskRun")} + ${envOf("tick")}`,
    t.taskRun + t.tick,
    "the sweep would pre-empt the run deadline",
  );
  mustExceed(
    envOf("nodeStale"),
    t.nodeStale,
    `2 × ${envOf("heartbeat")}`,
    2 * t.heartbeat,
    "one late heartbeat must not make a node stale",
  );
  mustExceed(
    envOf("agentReady"),
    t.agentReady,
    `2 × ${envOf("heartbeat")}`,
    2 * t.heartbeat,
    "a boot budget shorter than two heartbeats cannot be observed",
  );
  mustExceed(
    envOf("taskRun"),
    t.taskRun,
    envOf("dispatch"),
    t.dispatch,
    "a task must be allowed to run longer than it takes to hand it over",
  );
  mustExceed(
    envOf("nodeWarm"),
    t.nodeWarm,
    envOf("tick"),
    t.tick,
    "the reaper runs on the tick and could not honour a shorter warm time",
  );
  mustExceed(
    envOf("dispatch"),
    t.dispatch,
    envOf("retryBackoff"),
    t.retryBackoff,
    "a dispatch must outlast its first retry backoff",
  );
  return out;
}

/** Read base values and overrides from the environment, derive, and refuse a breaking configuration. */
export function timeoutsFromEnv(env: Env): Timeouts {
  const bases = Object.fromEntries(
    Object.entries(TIMER_BASES).map(([k, spec]) => [k, envDuration(env, spec.env, spec.default)]),
  ) as Record<TimerBase, number>;
  const overrides: Partial<Record<TimerOverride, number>> = {};
  for (const [k, spec] of Object.entries(TIMER_OVERRIDES)) {
    if (env[spec.env]?.trim()) overrides[k as TimerOverride] = envDuration(env, spec.env, 0);
  }
  const table = deriveTimeouts(bases, overrides);
  const violations = timeoutViolations(table);
  if (violations.length > 0) throw new ConfigError(violations[0]!);
  return table;
}

export const DEFAULT_TIMEOUTS: Timeouts = deriveTimeouts(
  Object.fromEntries(Object.entries(TIMER_BASES).map(([k, s]) => [k, s.default])) as Record<TimerBase, number>,
);

/** Rows for `GET /api/config` and the docs: name, value, and where it comes from. */
export function describeTimeouts(t: Timeouts): { name: string; ms: number; value: string; source: string }[] {
  return (Object.keys(t) as (keyof Timeouts)[]).map((name) => ({
    name,
    ms: t[name],
    value: fmt(t[name]),
    source: name in TIMER_BASES
      ? TIMER_BASES[name as TimerBase].env
      : `${DERIVATIONS[name as Exclude<keyof Timeouts, TimerBase>]}${
        name in TIMER_OVERRIDES ? ` (or ${TIMER_OVERRIDES[name as TimerOverride].env})` : ""
      }`,
  }));
}

/**
 * Per-request limits: how long one call may wait for its peer. They bound a single HTTP exchange, not a
 * phase of a task, so they are not derived from the bases above; they live here so every timer in SAM is in
 * one table (`GET /api/config` lists them too). Each must stay well under the phase deadline it serves.
 */
export const REQUEST_TIMEOUTS = {
  agentToEdge: { ms: 10_000, meaning: "an agent's ready/heartbeat/progress call to the edge" },
  taskLogPost: { ms: 15_000, meaning: "an agent's post of a task's log batch or result to the edge" },
  agentShutdown: { ms: 15_000, meaning: "an agent's graceful stop before it exits anyway" },
  exportProxyHeaders: {
    ms: 10_000,
    meaning: "the edge waits this long for an agent's export headers (the body then streams)",
  },
  databaseRequest: { ms: 15_000, meaning: "one request to a remote libSQL server (sqld, Turso)" },
  builtinModelCall: { ms: 120_000, meaning: "the built-in coding agent's wait for one model answer" },
  forgeRequest: { ms: 30_000, meaning: "one call to a forge's REST API when a task's work becomes a pull request" },
  hetznerRequest: { ms: 15_000, meaning: "one Hetzner API call (the default of SAM_HCLOUD_REQUEST_TIMEOUT)" },
  hetznerBackoffCap: { ms: 30_000, meaning: "the longest wait between retries of a Hetzner API call (429, 5xx)" },
  hetznerCreate: { ms: 5 * 60_000, meaning: "a Hetzner server create, from the call until the server runs" },
} as const;

/** `describeTimeouts` rows for the per-request limits. */
export function describeRequestTimeouts(): { name: string; ms: number; value: string; source: string }[] {
  return Object.entries(REQUEST_TIMEOUTS).map(([name, spec]) => ({
    name,
    ms: spec.ms,
    value: fmt(spec.ms),
    source: `fixed: ${spec.meaning}`,
  }));
}

/**
 * How long the edge keeps what it no longer needs to run tasks: the timers of its retention, pruned on the tick
 * in bounded chunks. Counted from when a task ended, a node was deleted or failed, a usage day ended.
 */
export const RETENTION_TIMERS = {
  taskLogs: {
    env: "SAM_TASK_LOG_RETENTION",
    default: 7 * 24 * 60 * MINUTE,
    meaning: "log lines of a finished task are kept this long (its status history stays with the task)",
  },
  tasks: {
    env: "SAM_TASK_RETENTION",
    default: 30 * 24 * 60 * MINUTE,
    meaning: "a finished task (its result and status history) is kept this long",
  },
  deadNodes: {
    env: "SAM_NODE_RETENTION",
    default: 7 * 24 * 60 * MINUTE,
    meaning: "the row of a deleted or failed node (its timings, its last warnings and errors) is kept this long",
  },
  usage: {
    env: "SAM_USAGE_RETENTION",
    default: 400 * 24 * 60 * MINUTE,
    meaning: "daily inference usage per key and model is kept this long",
  },
} as const;

export type Retention = { [K in keyof typeof RETENTION_TIMERS]: number };

/** Read the retention timers; a task's logs cannot outlive the task, so a longer log retention is refused. */
export function retentionFromEnv(env: Env): Retention {
  const r = Object.fromEntries(
    Object.entries(RETENTION_TIMERS).map(([k, spec]) => [k, envDuration(env, spec.env, spec.default)]),
  ) as Retention;
  if (r.taskLogs > r.tasks) {
    throw new ConfigError(
      `${RETENTION_TIMERS.taskLogs.env} (${fmt(r.taskLogs)}) must not exceed ${RETENTION_TIMERS.tasks.env} (${
        fmt(r.tasks)
      }): a task's logs go with the task`,
    );
  }
  return r;
}
