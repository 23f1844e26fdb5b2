/**
 * Retention: what the edge deletes so its database stops growing with every task — log lines of finished
 * tasks, finished tasks, rows of dead nodes and old usage days, each after its timer (shared/timeouts.ts).
 * Run on the tick, one bounded chunk of each per run, so a backlog (a first run on an old database) is worked
 * off over several ticks instead of one long write that would hold the database's single writer.
 */
import type { Retention } from "../../shared/timeouts.ts";
import type { Client } from "../db/client.ts";
import type { NodeStore } from "../nodes/store.ts";
import type { TaskStore } from "../tasks/store.ts";

/** Rows of each kind deleted per run at most (log rows hold up to 1,000 lines each). */
export const PRUNE_CHUNK = { logRows: 2_000, tasks: 500, nodes: 500, usage: 500 } as const;

export type Pruned = { logRows: number; tasks: number; nodes: number; usage: number };

export async function pruneOnce(
  d: { db: Client; tasks: TaskStore; nodes: NodeStore; retention: Retention },
  now = Date.now(),
): Promise<Pruned> {
  const logRows = await d.tasks.pruneLogs(now - d.retention.taskLogs, PRUNE_CHUNK.logRows);
  const tasks = await d.tasks.pruneFinished(now - d.retention.tasks, PRUNE_CHUNK.tasks);
  const nodes = await d.nodes.pruneDead(now - d.retention.deadNodes, PRUNE_CHUNK.nodes);
  // Usage is kept per UTC day: a day goes once all of it is older than the retention.
  const lastDay = new Date(now - d.retention.usage).toISOString().slice(0, 10);
  const usage = (await d.db.execute({
    sql:
      "DELETE FROM inference_usage WHERE rowid IN (SELECT rowid FROM inference_usage WHERE day < ? ORDER BY day LIMIT ?)",
    args: [lastDay, PRUNE_CHUNK.usage],
  })).rowsAffected;
  return { logRows, tasks, nodes, usage };
}
