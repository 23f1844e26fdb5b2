/**
 * The agent's side of `/api/agent/*` (docs/protocol.md § Agent → edge): an authenticated `post`, the ready
 * callback retried with backoff until accepted, and the heartbeat loop. Nothing here is ever fatal: every
 * attempt is recorded as an event and retried.
 */
import * as v from "valibot";
import { errorMessageOf } from "../../shared/errors.ts";
import type { AgentHeartbeat, AgentReady } from "../../shared/wire/agent.ts";
import { EVENT_TYPES } from "../../shared/wire/events.ts";
import type { MetricsSample } from "../../shared/wire/metrics.ts";
import type { ControlPlane, EventRecorder, TaskExecutor } from "../contracts.ts";
import type { RecentProblems } from "../events/recent-problems.ts";
import { REQUEST_TIMEOUTS } from "../../shared/timeouts.ts";

export class ControlPlaneClient implements ControlPlane {
  constructor(
    private readonly baseUrl: string,
    private readonly nodeToken: string,
    private readonly timeoutMs: number = REQUEST_TIMEOUTS.agentToEdge.ms,
  ) {}

  post(path: string, body: unknown, init: { signal?: AbortSignal } = {}): Promise<Response> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    return fetch(`${this.baseUrl}${path}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${this.nodeToken}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: init.signal ? AbortSignal.any([init.signal, timeout]) : timeout,
    });
  }
}

/** Why a call failed, for the event log: the status and the edge's error message, or the network error. */
async function failureReason(res: Response | null, err: unknown): Promise<string> {
  if (!res) return err instanceof Error ? `${err.name === "TimeoutError" ? "timed out" : err.message}` : String(err);
  // Not our error shape: the status says enough.
  const message = errorMessageOf(await res.text().catch(() => ""));
  return `HTTP ${res.status}${message === null ? "" : `: ${message.slice(0, 300)}`}`;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

/**
 * POST the ready callback until the edge answers 2xx, doubling the wait from `initialBackoffMs` up to
 * `maxBackoffMs` (the heartbeat interval, so a late edge sees the node within one heartbeat).
 * Resolves true once accepted, false when stopped first.
 */
export async function sendReady(opts: {
  controlPlane: ControlPlane;
  events: EventRecorder;
  ready: AgentReady;
  initialBackoffMs: number;
  maxBackoffMs: number;
  signal: AbortSignal;
}): Promise<boolean> {
  let backoff = opts.initialBackoffMs;
  for (let attempt = 1; !opts.signal.aborted; attempt++) {
    let res: Response | null = null;
    let error: unknown = null;
    try {
      res = await opts.controlPlane.post("/api/agent/ready", opts.ready, { signal: opts.signal });
    } catch (err) {
      error = err;
    }
    if (res?.ok) {
      opts.events.record({
        type: EVENT_TYPES.readySent,
        message: `ready accepted (attempt ${attempt})`,
        detail: { attempt, status: res.status },
      });
      return true;
    }
    if (opts.signal.aborted) return false;
    const reason = await failureReason(res, error);
    opts.events.record({
      type: EVENT_TYPES.readyFailed,
      level: "warn",
      message: `ready callback failed: ${reason}; retrying in ${backoff} ms`,
      detail: { attempt, status: res?.status ?? null, retryInMs: backoff },
    });
    await sleep(backoff, opts.signal);
    backoff = Math.min(backoff * 2, opts.maxBackoffMs);
  }
  return false;
}

const HeartbeatAnswer = v.object({ cancel: v.optional(v.array(v.string()), []) });

export type HeartbeatDeps = {
  controlPlane: ControlPlane;
  events: EventRecorder;
  nodeId: string;
  startedAt: number;
  latestMetrics: () => MetricsSample | null;
  executor: TaskExecutor | null;
  /** The warnings and errors since the last accepted heartbeat (the event store's), carried to the edge. */
  problems?: RecentProblems;
  now?: () => number;
};

/**
 * One heartbeat: send, record, and act on the tasks the edge wants cancelled. Never throws. It carries the
 * warnings and errors recorded since the last accepted one; only an accepted heartbeat forgets them.
 */
export async function heartbeat(deps: HeartbeatDeps): Promise<boolean> {
  const now = (deps.now ?? Date.now)();
  const problems = deps.problems?.empty === false ? deps.problems.take() : null;
  const body: AgentHeartbeat = {
    nodeId: deps.nodeId,
    at: now,
    uptimeMs: Math.max(0, now - deps.startedAt),
    activeTasks: deps.executor?.activeTaskIds() ?? [],
    metrics: deps.latestMetrics(),
    ...(problems ? { recentProblems: problems.problems } : {}),
  };
  let res: Response | null = null;
  let error: unknown = null;
  const sentAt = Date.now();
  try {
    res = await deps.controlPlane.post("/api/agent/heartbeat", body);
  } catch (err) {
    error = err;
  }
  if (problems) {
    // A 400 may be the problems themselves (an edge with other limits): sent again they would be refused
    // again, and the node, its heartbeats all refused, would look dead. They are dropped, the node stays seen.
    // Settled before the failure is recorded, so a failure like the last one counts on the entry waiting.
    deps.problems!.settle(problems, res?.ok === true || res?.status === 400);
  }
  if (!res?.ok) {
    const reason = await failureReason(res, error);
    deps.events.record({
      type: EVENT_TYPES.heartbeatFailed,
      level: "warn",
      message: `heartbeat failed: ${reason}`,
      detail: { status: res?.status ?? null },
    });
    return false;
  }
  let cancel: string[] = [];
  try {
    const parsed = v.safeParse(HeartbeatAnswer, await res.json());
    if (parsed.success) cancel = parsed.output.cancel;
  } catch {
    // an answer without a body is still an accepted heartbeat
  }
  deps.events.record({
    type: EVENT_TYPES.heartbeatSent,
    level: "debug",
    message: `heartbeat sent (${Date.now() - sentAt} ms)`,
    detail: { status: res.status, activeTasks: body.activeTasks.length, cancel },
  });
  for (const taskId of cancel) {
    try {
      const cancelled = await deps.executor?.cancel(taskId) ?? false;
      deps.events.record({
        type: EVENT_TYPES.taskStep,
        taskId,
        message: cancelled ? "cancelled at the edge's request" : "edge asked to cancel a task that is not running",
      });
    } catch (err) {
      deps.events.record({
        type: EVENT_TYPES.error,
        level: "error",
        taskId,
        message: `cancel failed: ${(err as Error).message}`,
      });
    }
  }
  return true;
}

/** Heartbeats every `intervalMs` (each waits for the previous one, so a slow edge never piles them up). */
export function startHeartbeats(deps: HeartbeatDeps & { intervalMs: number }): { stop(): void } {
  let timer: ReturnType<typeof setTimeout> | null = null;
  let stopped = false;
  const loop = async () => {
    await heartbeat(deps);
    if (!stopped) timer = setTimeout(loop, deps.intervalMs);
  };
  void loop();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
