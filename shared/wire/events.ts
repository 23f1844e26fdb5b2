/** The node event log (docs/agent.md): levels, the event types we record, and one event. */
import * as v from "valibot";
import { EpochMs } from "./common.ts";

export const EventLevel = v.picklist(["debug", "info", "warn", "error"]);
export type EventLevel = v.InferOutput<typeof EventLevel>;

/** Every type the agent records. A type outside this list is still stored; these are the ones we rely on. */
export const EVENT_TYPES = {
  agentStart: "agent.start",
  agentStop: "agent.stop",
  readySent: "agent.ready.sent",
  readyFailed: "agent.ready.failed",
  heartbeatSent: "heartbeat.sent",
  heartbeatFailed: "heartbeat.failed",
  bootPhase: "boot.phase",
  workspaceCreate: "workspace.create",
  workspaceCleanup: "workspace.cleanup",
  containerBuild: "container.build",
  taskStep: "task.step",
  taskOutput: "task.output",
  error: "error",
} as const;

export const NodeEvent = v.object({
  id: v.pipe(v.number(), v.integer()),
  at: EpochMs,
  level: EventLevel,
  type: v.pipe(v.string(), v.minLength(1), v.maxLength(64)),
  nodeId: v.nullable(v.string()),
  workspaceId: v.nullable(v.string()),
  taskId: v.nullable(v.string()),
  message: v.string(),
  detail: v.nullable(v.unknown()),
});
export type NodeEvent = v.InferOutput<typeof NodeEvent>;
