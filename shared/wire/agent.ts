/** Agent → edge callbacks under `/api/agent/*` (node token), docs/protocol.md. */
import * as v from "valibot";
import { type Env, envInt } from "../env.ts";
import { BootTimeline } from "./boot.ts";
import { EpochMs, Id, NonNegativeInt } from "./common.ts";
import { MetricsSample } from "./metrics.ts";

export const WorkspaceMode = v.picklist(["host", "devcontainer"]);
export type WorkspaceMode = v.InferOutput<typeof WorkspaceMode>;

/**
 * How many tasks one agent runs at once (`SAM_MAX_CONCURRENT_TASKS` on the node): the agent parses it once,
 * reports it in its capabilities, and the edge uses the default for a node that has not reported yet.
 */
export const TASK_SLOTS = { default: 2, min: 1, max: 64 } as const;

/** The most one `POST /tasks/batch` may carry (shared/wire/task.ts TaskDispatchBatch): tasks, and bytes of body. */
export const TASK_DISPATCH_BATCH = { maxTasks: 64, maxBytes: 4 * 1024 * 1024 } as const;

/** The one parser of `SAM_MAX_CONCURRENT_TASKS` (agent and work configuration both call it). */
export const taskSlotsFromEnv = (env: Env): number =>
  envInt(env, "SAM_MAX_CONCURRENT_TASKS", TASK_SLOTS.default, TASK_SLOTS.min, TASK_SLOTS.max);

export const AgentCapabilities = v.object({
  workspaceModes: v.array(WorkspaceMode),
  agents: v.array(v.picklist(["builtin", "command"])),
  maxConcurrentTasks: v.pipe(v.number(), v.integer(), v.minValue(1)),
  /**
   * How host-mode tasks are isolated (docs/sandbox.md): `bubblewrap`; `off`, the operator's unsafe choice; or
   * `unavailable`, bwrap missing, so host-mode tasks are refused. Absent from agents that predate it.
   */
  sandbox: v.optional(v.picklist(["bubblewrap", "off", "unavailable"])),
  /** Takes several dispatches in one `POST /tasks/batch` (shared/wire/task.ts). Absent from agents that predate it. */
  batchDispatch: v.optional(v.boolean()),
  arch: v.string(),
  os: v.string(),
});
export type AgentCapabilities = v.InferOutput<typeof AgentCapabilities>;

/** `POST /api/agent/ready` */
export const AgentReady = v.object({
  nodeId: Id,
  version: v.pipe(v.string(), v.maxLength(64)),
  /** Where the edge reaches this agent, e.g. `https://203.0.113.7:8443` or `http://127.0.0.1:41234`. */
  url: v.pipe(v.string(), v.url()),
  /** SHA-256 fingerprint of the agent's self-signed TLS certificate, when it serves TLS. */
  tlsFingerprint: v.optional(v.nullable(v.pipe(v.string(), v.regex(/^[0-9A-Fa-f:]{64,95}$/)))),
  /**
   * That certificate (PEM): the edge pins it for its calls to an `https` agent URL, after checking it against
   * `tlsFingerprint` (docs/protocol.md § TLS). Required with an `https` URL.
   */
  tlsCertificate: v.optional(v.nullable(v.pipe(
    v.string(),
    v.maxLength(16_384, "tlsCertificate is at most 16 KiB"),
    v.regex(
      /^\s*-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----\s*$/,
      "tlsCertificate must be one PEM certificate",
    ),
  ))),
  bootTimeline: BootTimeline,
  capabilities: AgentCapabilities,
  startedAt: EpochMs,
  /**
   * Why the agent runs degraded (e.g. its boot's `tls` phase failed): it reports ready so the edge learns the
   * failure at once, and the edge gives it no work. Absent or null: a healthy agent.
   */
  degraded: v.optional(v.nullable(v.pipe(v.string(), v.maxLength(1_000)))),
});
export type AgentReady = v.InferOutput<typeof AgentReady>;

/** The most warnings and errors one heartbeat carries, and the longest type and message of each. */
export const NODE_PROBLEM_LIMITS = { perHeartbeat: 50, typeLength: 64, messageLength: 1_000 } as const;

/**
 * A warning or error the agent recorded (an event of level `warn` or `error`), carried to the edge by the
 * heartbeats so it outlives the node: a VM that vanishes takes its events.db with it. One entry may stand for
 * a run of the same problem (a heartbeat failing through an outage): `repeats` more times after `at`, the last
 * at `lastAt`.
 */
export const NodeProblem = v.object({
  at: EpochMs,
  level: v.picklist(["warn", "error"], "level must be warn or error"),
  type: v.pipe(v.string(), v.minLength(1), v.maxLength(NODE_PROBLEM_LIMITS.typeLength)),
  message: v.pipe(v.string(), v.maxLength(NODE_PROBLEM_LIMITS.messageLength)),
  taskId: v.optional(v.nullable(Id)),
  repeats: v.optional(NonNegativeInt),
  lastAt: v.optional(v.nullable(EpochMs)),
});
export type NodeProblem = v.InferOutput<typeof NodeProblem>;

/** `POST /api/agent/heartbeat` */
export const AgentHeartbeat = v.object({
  nodeId: Id,
  at: EpochMs,
  uptimeMs: NonNegativeInt,
  /** The tasks the agent runs (at most its concurrency; the bound keeps one heartbeat's work bounded). */
  activeTasks: v.pipe(v.array(Id), v.maxLength(1_000, "activeTasks lists at most 1000 tasks")),
  metrics: v.optional(v.nullable(MetricsSample)),
  /**
   * Warnings and errors recorded since the last accepted heartbeat, oldest first (absent from agents that
   * predate it). A heartbeat the edge did not accept carries them again, so the edge stores them idempotently.
   */
  recentProblems: v.optional(
    v.pipe(
      v.array(NodeProblem),
      v.maxLength(
        NODE_PROBLEM_LIMITS.perHeartbeat,
        `recentProblems lists at most ${NODE_PROBLEM_LIMITS.perHeartbeat} problems`,
      ),
    ),
  ),
});
export type AgentHeartbeat = v.InferOutput<typeof AgentHeartbeat>;
