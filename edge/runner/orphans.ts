/**
 * The orphan reaper, one pass of it: every server the provider lists as SAM's (by label) that belongs to
 * no live node is deleted — at once when its node has failed (its create is over and nothing will use the
 * server), after `orphanGrace` when its node is deleted or unknown (a database restored from an older copy,
 * an edge that crashed between steps). `dry-run` only logs what it would delete. Deleting is idempotent, so
 * several edge instances may reap at once.
 */
import type { NodeStatus } from "../../shared/wire/api.ts";
import type { NodeStore } from "../nodes/store.ts";
import type { Provider } from "../providers/provider.ts";

export type OrphanReaperMode = "on" | "dry-run" | "off";

export type ReapReport = {
  /** SAM's servers the provider listed. */
  listed: number;
  deleted: number;
  /** `dry-run`: the servers it would have deleted. */
  wouldDelete: number;
  /** Orphans younger than the grace period, left for a later pass. */
  waiting: number;
  /** Deletes that failed; the next pass tries again. */
  failed: number;
  /** Node ids that still have a server after this pass. */
  nodesWithServers: Set<string>;
};

/** Nodes whose server is in use or about to be. */
const LIVE: ReadonlySet<NodeStatus> = new Set<NodeStatus>(["provisioning", "booting", "ready", "draining"]);

export async function reapOrphans(
  d: { provider: Provider; nodes: NodeStore; log: (message: string) => void },
  o: { mode: "on" | "dry-run"; graceMs: number; now: number },
): Promise<ReapReport> {
  const servers = await d.provider.list();
  const report: ReapReport = {
    listed: servers.length,
    deleted: 0,
    wouldDelete: 0,
    waiting: 0,
    failed: 0,
    nodesWithServers: new Set(),
  };
  const deleted = new Set<string>();
  for (const s of servers) {
    const node = s.nodeId ? await d.nodes.get(s.nodeId) : null;
    if ((node && LIVE.has(node.status)) || s.status === "deleting") continue;
    const why = node
      ? `node ${node.id} is ${node.status}`
      : s.nodeId
      ? `node ${s.nodeId} is unknown`
      : "it names no node";
    if (node?.status !== "failed" && o.now - s.createdAt < o.graceMs) {
      report.waiting++;
      continue;
    }
    if (o.mode === "dry-run") {
      report.wouldDelete++;
      d.log(`orphan reaper (dry run): would delete server ${s.id} (${why})`);
      continue;
    }
    try {
      await d.provider.delete(s.id);
      report.deleted++;
      deleted.add(s.id);
      d.log(`orphan reaper: deleted server ${s.id} (${why})`);
    } catch (err) {
      report.failed++;
      d.log(
        `orphan reaper: could not delete server ${s.id} (${why}): ${
          (err as Error).message
        }; trying again on the next tick`,
      );
    }
  }
  for (const s of servers) if (s.nodeId && !deleted.has(s.id)) report.nodesWithServers.add(s.nodeId);
  return report;
}
