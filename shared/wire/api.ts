/**
 * What the edge's JSON API answers about nodes and tasks (`/api/nodes*`, `/api/tasks*`). The admin pages
 * render these very shapes, so the API and the pages cannot drift apart.
 */
import * as v from "valibot";
import { BootTimeline } from "./boot.ts";
import { EpochMs, Id, Labels, NonNegativeInt } from "./common.ts";
import { MetricsSample } from "./metrics.ts";
import { GitRef, RepoPush, RepoUrl, TaskAgent, TaskResult, TaskStatus } from "./task.ts";

export const NODE_STATUSES = ["provisioning", "booting", "ready", "draining", "deleted", "failed"] as const;
export const NodeStatus = v.picklist(NODE_STATUSES);
export type NodeStatus = v.InferOutput<typeof NodeStatus>;
export const NodeHealth = v.picklist(["healthy", "stale", "unhealthy", "unknown"]);
export type NodeHealth = v.InferOutput<typeof NodeHealth>;

export const ProviderTimingView = v.object({ name: v.string(), at: EpochMs });

/** A warning or error the node's heartbeats carried (shared/wire/agent.ts `NodeProblem`), as the edge kept it. */
export const NodeProblemView = v.object({
  at: EpochMs,
  level: v.picklist(["warn", "error"]),
  type: v.string(),
  message: v.string(),
  taskId: v.nullable(v.string()),
  /** Recorded this many more times after `at`, the last at `lastAt` (a heartbeat failing through an outage). */
  repeats: NonNegativeInt,
  lastAt: v.nullable(EpochMs),
  /** When the edge got it: the heartbeat after the problem, or the first accepted one after an outage. */
  receivedAt: EpochMs,
});
export type NodeProblemView = v.InferOutput<typeof NodeProblemView>;

export const NodeView = v.object({
  id: Id,
  status: NodeStatus,
  health: NodeHealth,
  /** Why the node is in its status, e.g. "agent not ready after 15m (boot budget)". */
  statusReason: v.nullable(v.string()),
  provider: v.picklist(["local", "hetzner"]),
  providerServerId: v.nullable(v.string()),
  ipv4: v.nullable(v.string()),
  /** The API key whose tasks this node runs (a node never serves two users). */
  ownerKeyId: v.nullable(v.string()),
  createdAt: EpochMs,
  readyAt: v.nullable(EpochMs),
  lastHeartbeatAt: v.nullable(EpochMs),
  agentVersion: v.nullable(v.string()),
  agentUrl: v.nullable(v.string()),
  activeTasks: v.array(Id),
  /** Provider milestones before the boot: create_call, action_done, server_running; then agent_ready. */
  providerTimings: v.array(ProviderTimingView),
  bootTimeline: v.nullable(BootTimeline),
  lastMetrics: v.nullable(MetricsSample),
  /**
   * Its last warnings and errors, newest first, as its heartbeats carried them (at most 100): kept when the
   * node fails or is deleted, so a node that died suddenly still says what went wrong. Only on
   * `GET /api/nodes/:id`, not in the list.
   */
  recentProblems: v.optional(v.array(NodeProblemView)),
});
export type NodeView = v.InferOutput<typeof NodeView>;

/** `GET /api/nodes/:id/metrics?window=1h|24h|7d` (the agent's series, proxied). */
export const NodeMetricsView = v.object({ nodeId: Id, window: v.string(), samples: v.array(MetricsSample) });
export type NodeMetricsView = v.InferOutput<typeof NodeMetricsView>;

export const TaskTransitionView = v.object({ status: TaskStatus, at: EpochMs, reason: v.nullable(v.string()) });

/** Where a task's time went, in ms; null for phases it has not reached (or skipped, e.g. boot on a warm node). */
export const TaskPhasesView = v.object({
  queued: v.nullable(NonNegativeInt),
  provisioning: v.nullable(NonNegativeInt),
  boot: v.nullable(NonNegativeInt),
  dispatch: v.nullable(NonNegativeInt),
  run: v.nullable(NonNegativeInt),
});

export const TaskView = v.object({
  id: Id,
  status: TaskStatus,
  prompt: v.string(),
  /** The repo without its credential, which is never echoed. */
  repo: v.nullable(v.object({ url: RepoUrl, branch: v.nullable(GitRef), push: v.optional(RepoPush) })),
  agent: TaskAgent,
  model: v.nullable(v.string()),
  labels: Labels,
  keyId: v.nullable(v.string()),
  nodeId: v.nullable(Id),
  createdAt: EpochMs,
  updatedAt: EpochMs,
  transitions: v.array(TaskTransitionView),
  phases: TaskPhasesView,
  result: v.nullable(TaskResult),
  /** Why it failed or was cancelled, naming the timer and phase for timeouts. */
  error: v.nullable(v.string()),
});
export type TaskView = v.InferOutput<typeof TaskView>;

/**
 * One entry of `GET /api/tasks/:id/events` (and of its SSE stream: `event: status|log|end`, `id:` = `id`).
 * Status changes and log lines share one ordered sequence per task.
 */
export const TaskEventView = v.object({
  id: NonNegativeInt,
  at: EpochMs,
  type: v.picklist(["status", "log"]),
  status: v.optional(TaskStatus),
  stream: v.optional(v.picklist(["stdout", "stderr", "system"])),
  message: v.string(),
});
export type TaskEventView = v.InferOutput<typeof TaskEventView>;

/** Cursor pagination everywhere: `?cursor=` takes the `nextCursor` of the previous page. */
export function pageOf<T extends v.GenericSchema>(item: T) {
  return v.object({ data: v.array(item), nextCursor: v.nullable(v.string()) });
}
