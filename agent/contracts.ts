/**
 * Seams between the agent's parts, so the instruments (event store, monitor, server, control-plane client)
 * and the work (workspaces, coding agents) can be built and tested apart.
 */
import type { TaskDispatch } from "../shared/wire/task.ts";
import type { EventLevel } from "../shared/wire/events.ts";

/** What any part records into the event store; the store fills in id, time and node id. */
export type EventInput = {
  type: string;
  message: string;
  level?: EventLevel;
  taskId?: string | null;
  workspaceId?: string | null;
  detail?: unknown;
  at?: number;
};

export interface EventRecorder {
  /** Queue an event; never blocks on disk (the store batches writes). */
  record(event: EventInput): void;
}

/** Agent → edge calls, authenticated with the node token, e.g. `post("/api/agent/tasks/t1/events", batch)`. */
export interface ControlPlane {
  post(path: string, body: unknown, init?: { signal?: AbortSignal }): Promise<Response>;
}

import type { TaskRunState } from "../shared/wire/task.ts";
export type { TaskRunState };

/** Runs dispatched tasks in workspaces (issue: running the work). The server's `/tasks` routes call it. */
export interface TaskExecutor {
  /** Accept and start a task. Throws `HttpError(409)` for a task id it already has, `HttpError(429)` at capacity. */
  start(dispatch: TaskDispatch): Promise<TaskRunState>;
  status(taskId: string): TaskRunState | null;
  /** Kill the task's process group; false when the task is unknown or already finished. */
  cancel(taskId: string): Promise<boolean>;
  activeTaskIds(): string[];
  /** On SIGTERM: stop accepting, report running tasks as failed ("agent stopping"), flush. */
  shutdown(): Promise<void>;
}
