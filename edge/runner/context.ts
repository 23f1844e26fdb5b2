/**
 * What the runner's parts share: the stores and services the edge gives it, the timer table, and a way to run
 * work after the current request has answered. The `Runner` class (runner.ts) builds one and hands it to
 * placement.ts, dispatch.ts, node-lifecycle.ts and tick.ts.
 */
import type { Timeouts } from "../../shared/timeouts.ts";
import type { TaskStatus } from "../../shared/wire/task.ts";
import type { AgentClient } from "../nodes/agent-client.ts";
import type { NodeRecord, NodeStore } from "../nodes/store.ts";
import type { Provider } from "../providers/provider.ts";
import type { TaskStore } from "../tasks/store.ts";
import type { Wakeups } from "../tasks/wakeups.ts";
import type { DispatchBatcher } from "./dispatch-batch.ts";
import type { OrphanReaperMode } from "./orphans.ts";

export type RunnerDeps = {
  tasks: TaskStore;
  nodes: NodeStore;
  provider: Provider;
  agent: AgentClient;
  timeouts: Timeouts;
  /** Most nodes with a server at once (provisioning, booting, ready or draining); a database invariant. */
  maxNodes: number;
  /** The edge's public URL, known once it listens. */
  publicUrl: () => string;
  wakeups: Wakeups;
  /** What the tick does with servers of no live node (`SAM_ORPHAN_REAPER`); off when absent. */
  orphanReaper?: OrphanReaperMode;
  /** Keeps a node's diagnostics (its agent's databases) before its server is deleted; best effort. */
  archive?: (node: NodeRecord) => Promise<string[]>;
  log?: (message: string) => void;
};

/** What the orphan reaper has done since this instance started. */
export type OrphanCounts = { passes: number; deleted: number; wouldDelete: number; failed: number };

export type RunnerContext = RunnerDeps & {
  t: Timeouts;
  log: (message: string) => void;
  /** Run work after the current request has answered; failures are logged, never lost silently. */
  background: (work: () => Promise<unknown>) => void;
  /** One orphan pass at a time per instance: the provider's listing may be slow or retrying. */
  reaper: { running: boolean; counts: OrphanCounts };
  /** The agent calls of dispatches, one per node and turn where the agent takes batches (dispatch-batch.ts). */
  dispatches: DispatchBatcher;
};

/** Tasks placed on a node whose agent has not reported ready yet. */
export const BOOTING: TaskStatus[] = ["provisioning", "waiting_for_agent"];

/** How long the edge waits for an agent's answer to a dispatch before treating it as a transient failure. */
export function requestTimeoutMs(t: Timeouts): number {
  return Math.max(1_000, Math.floor(t.dispatch / 3));
}

/** A lease on a dispatch: if this instance dies before the agent answers, the tick retries after it. */
export function dispatchLease(t: Timeouts, now: number): number {
  return now + requestTimeoutMs(t) + t.retryBackoff;
}
