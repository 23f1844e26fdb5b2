/** Nodes in libSQL: credentials (node token hashed, agent token sealed), status CAS, heartbeats, timings. */
import type { InValue } from "@libsql/client";
import type { NodeHealth, NodeProblemView, NodeStatus, NodeView } from "../../shared/wire/api.ts";
import type { AgentCapabilities, NodeProblem } from "../../shared/wire/agent.ts";
import type { BootTimeline } from "../../shared/wire/boot.ts";
import type { BootMarker } from "../../agent/boot/markers.ts";
import type { MetricsSample } from "../../shared/wire/metrics.ts";
import type { Timeouts } from "../../shared/timeouts.ts";
import type { SecretBox } from "../auth/secret-box.ts";
import type { Client } from "../db/client.ts";
import { sqlList } from "../tasks/store.ts";

/** Nodes that exist or are coming up: what can take work. */
const LIVE_NODE_SQL = sqlList(["provisioning", "booting", "ready"] satisfies NodeStatus[]);
/** What counts against SAM_MAX_NODES: every node that has, or may yet get, a server (a draining one still has it). */
export const CAPPED_NODE_STATUSES = ["provisioning", "booting", "ready", "draining"] as const satisfies NodeStatus[];
const CAPPED_NODE_SQL = sqlList(CAPPED_NODE_STATUSES);

/** The warnings and errors kept per node (the newest): a few heartbeats' worth, bounded whatever a node sends. */
export const NODE_PROBLEMS_KEPT = 100;

/** What one accepted heartbeat writes. */
export type HeartbeatWrite = {
  activeTasks: string[];
  /** Absent: the last sample stays. */
  metrics?: MetricsSample | null;
  problems: NodeProblem[];
};

export type NodeRecord = {
  id: string;
  status: NodeStatus;
  statusReason: string | null;
  statusAt: number;
  provider: "local" | "hetzner";
  providerServerId: string | null;
  ipv4: string | null;
  ownerKeyId: string | null;
  /** The token the edge presents to the node's agent, as stored: sealed (AgentClient opens it per call). */
  agentToken: string;
  slots: number;
  /** Tasks holding a slot on the node (kept by triggers). */
  tasksOnNode: number;
  createdAt: number;
  readyAt: number | null;
  lastHeartbeatAt: number | null;
  idleSince: number | null;
  agentVersion: string | null;
  agentUrl: string | null;
  /** The certificate (PEM) an `https` agent reported; the edge's calls to it trust only this one. */
  agentTlsCert: string | null;
  activeTasks: string[];
  bootTimeline: BootTimeline | null;
  /** The boot's live progress markers, as posted (edge/nodes/boot-record.ts). */
  bootProgress: BootMarker[];
  lastMetrics: MetricsSample | null;
  capabilities: AgentCapabilities | null;
};

/** What is written about a node besides its status, by the record's names (`update`, `transition`). */
export type NodeFields = Partial<
  Pick<
    NodeRecord,
    | "providerServerId"
    | "ipv4"
    | "slots"
    | "lastHeartbeatAt"
    | "agentVersion"
    | "agentUrl"
    | "agentTlsCert"
    | "activeTasks"
    | "bootTimeline"
    | "lastMetrics"
    | "capabilities"
  >
>;

/** Each field's column; the JSON ones are stored as text. */
const NODE_COLUMNS = {
  providerServerId: ["provider_server_id", false],
  ipv4: ["ipv4", false],
  slots: ["slots", false],
  lastHeartbeatAt: ["last_heartbeat_at", false],
  agentVersion: ["agent_version", false],
  agentUrl: ["agent_url", false],
  agentTlsCert: ["agent_tls_cert", false],
  activeTasks: ["active_tasks", true],
  bootTimeline: ["boot_timeline", true],
  lastMetrics: ["last_metrics", true],
  capabilities: ["capabilities", true],
} as const satisfies Record<keyof NodeFields, readonly [string, boolean]>;

/** `col = ?` assignments and their args for the fields present in `set`. */
function assignments(set: NodeFields): { sql: string[]; args: InValue[] } {
  const sql: string[] = [];
  const args: InValue[] = [];
  for (const [field, value] of Object.entries(set) as [keyof NodeFields, NodeFields[keyof NodeFields]][]) {
    if (value === undefined) continue;
    const [column, json] = NODE_COLUMNS[field];
    sql.push(`${column} = ?`);
    args.push(json && value !== null ? JSON.stringify(value) : value as InValue);
  }
  return { sql, args };
}

type Row = Record<string, unknown>;
const num = (x: unknown) => (x === null || x === undefined ? null : Number(x));
const str = (x: unknown) => (x === null || x === undefined ? null : String(x));
const json = <T>(x: unknown) => (x === null || x === undefined ? null : (JSON.parse(String(x)) as T));

export function nodeFromRow(r: Row): NodeRecord {
  return {
    id: String(r.id),
    status: String(r.status) as NodeStatus,
    statusReason: str(r.status_reason),
    statusAt: Number(r.status_at),
    provider: String(r.provider) as "local",
    providerServerId: str(r.provider_server_id),
    ipv4: str(r.ipv4),
    ownerKeyId: str(r.owner_key_id),
    agentToken: String(r.agent_token),
    slots: Number(r.slots),
    tasksOnNode: Number(r.tasks_on_node ?? 0),
    createdAt: Number(r.created_at),
    readyAt: num(r.ready_at),
    lastHeartbeatAt: num(r.last_heartbeat_at),
    idleSince: num(r.idle_since),
    agentVersion: str(r.agent_version),
    agentUrl: str(r.agent_url),
    agentTlsCert: str(r.agent_tls_cert),
    activeTasks: json<string[]>(r.active_tasks) ?? [],
    bootTimeline: json<BootTimeline>(r.boot_timeline),
    bootProgress: json<BootMarker[]>(r.boot_progress) ?? [],
    lastMetrics: json<MetricsSample>(r.last_metrics),
    capabilities: json<AgentCapabilities>(r.capabilities),
  };
}

/** Health from heartbeats: a node without one for `nodeStale` is stale, for `nodeUnhealthy` unhealthy. */
export function nodeHealth(
  n: Pick<NodeRecord, "status" | "lastHeartbeatAt" | "readyAt">,
  t: Timeouts,
  now = Date.now(),
): NodeHealth {
  if (n.status !== "ready" && n.status !== "draining") return "unknown";
  const last = n.lastHeartbeatAt ?? n.readyAt;
  if (last === null) return "unknown";
  const age = now - last;
  if (age >= t.nodeUnhealthy) return "unhealthy";
  if (age >= t.nodeStale) return "stale";
  return "healthy";
}

export class NodeStore {
  constructor(private readonly db: Client, private readonly box: SecretBox) {}

  /**
   * `agentToken` is the plain token; only its sealed form is written.
   * Insert a node row only while fewer than `maxNodes` nodes count against the cap. The count and the insert
   * are one statement, so one write transaction: however many edge instances share the database, two
   * inserts can never both see the last free place. Null when the cap is reached.
   */
  async insertUnderCap(
    n: {
      id: string;
      provider: "local" | "hetzner";
      ownerKeyId: string | null;
      nodeTokenHash: string;
      agentToken: string;
      slots: number;
      now: number;
    },
    maxNodes: number,
  ): Promise<NodeRecord | null> {
    const r = await this.db.execute({
      sql:
        `INSERT INTO nodes (id, status, status_at, provider, owner_key_id, node_token_hash, agent_token, slots, created_at, idle_since)
            SELECT ?, 'provisioning', ?, ?, ?, ?, ?, ?, ?, ?
            WHERE (SELECT COUNT(*) FROM nodes WHERE status IN ${CAPPED_NODE_SQL}) < ?
            RETURNING *`,
      args: [
        n.id,
        n.now,
        n.provider,
        n.ownerKeyId,
        n.nodeTokenHash,
        await this.box.seal(n.agentToken),
        n.slots,
        n.now,
        n.now,
        maxNodes,
      ],
    });
    return r.rows[0] ? nodeFromRow(r.rows[0] as Row) : null;
  }

  /** How many nodes count against the cap, and whether an idle ready node of another key could give way. */
  async capacity(keyId: string): Promise<{ capped: number; idleElsewhere: boolean }> {
    const r = await this.db.execute({
      sql: `SELECT (SELECT COUNT(*) FROM nodes WHERE status IN ${CAPPED_NODE_SQL}) AS capped,
              EXISTS (SELECT 1 FROM nodes WHERE status = 'ready' AND tasks_on_node = 0 AND owner_key_id IS NOT NULL AND owner_key_id <> ?) AS idle`,
      args: [keyId],
    });
    return { capped: Number(r.rows[0]!.capped), idleElsewhere: Number(r.rows[0]!.idle) === 1 };
  }

  /**
   * Start draining the longest-idle ready node of another key (no task on it), so a key waiting at the cap
   * gets its place; null when there is none. The CAS re-checks that the node is still idle.
   */
  async drainIdleFor(keyId: string, reason: string, now = Date.now()): Promise<NodeRecord | null> {
    const r = await this.db.execute({
      sql: `UPDATE nodes SET status = 'draining', status_reason = ?, status_at = ?
            WHERE id = (SELECT id FROM nodes WHERE status = 'ready' AND tasks_on_node = 0 AND owner_key_id IS NOT NULL
                          AND owner_key_id <> ? ORDER BY idle_since LIMIT 1)
              AND status = 'ready' AND tasks_on_node = 0
            RETURNING *`,
      args: [reason, now, keyId],
    });
    return r.rows[0] ? nodeFromRow(r.rows[0] as Row) : null;
  }

  /** Rows of nodes deleted or failed before `before`, at most `limit`; their timings and problems go with them. */
  async pruneDead(before: number, limit: number): Promise<number> {
    const dead =
      `SELECT id FROM nodes WHERE status IN ('deleted','failed') AND status_at < ? ORDER BY status_at LIMIT ?`;
    const [, , r] = await this.db.batch([
      { sql: `DELETE FROM node_timings WHERE node_id IN (${dead})`, args: [before, limit] },
      { sql: `DELETE FROM node_problems WHERE node_id IN (${dead})`, args: [before, limit] },
      { sql: `DELETE FROM nodes WHERE id IN (${dead})`, args: [before, limit] },
    ], "write");
    return r!.rowsAffected;
  }

  async get(id: string): Promise<NodeRecord | null> {
    const r = await this.db.execute({ sql: "SELECT * FROM nodes WHERE id = ?", args: [id] });
    return r.rows[0] ? nodeFromRow(r.rows[0] as Row) : null;
  }

  async list(
    opts: { includeDeleted: boolean; cursor: string | null; limit: number },
  ): Promise<{ nodes: NodeRecord[]; nextCursor: string | null }> {
    const where: string[] = [];
    const args: InValue[] = [];
    if (!opts.includeDeleted) where.push("status <> 'deleted'");
    if (opts.cursor !== null) (where.push("rowid < ?"), args.push(Number(opts.cursor)));
    args.push(opts.limit + 1);
    const r = await this.db.execute({
      sql: `SELECT rowid AS rid, * FROM nodes ${
        where.length ? `WHERE ${where.join(" AND ")}` : ""
      } ORDER BY rowid DESC LIMIT ?`,
      args,
    });
    const rows = r.rows.slice(0, opts.limit);
    return {
      nodes: rows.map((row) => nodeFromRow(row as Row)),
      nextCursor: r.rows.length > opts.limit ? String(rows[rows.length - 1]!.rid) : null,
    };
  }

  async inStatus(statuses: readonly NodeStatus[]): Promise<NodeRecord[]> {
    const r = await this.db.execute({
      sql: `SELECT * FROM nodes WHERE status IN (${statuses.map(() => "?").join(",")})`,
      args: [...statuses],
    });
    return r.rows.map((row) => nodeFromRow(row as Row));
  }

  /** Compare-and-set on the node's status; `set` is written with the move, only when it happens. */
  async transition(
    id: string,
    from: readonly NodeStatus[],
    to: NodeStatus,
    reason: string | null,
    set: NodeFields = {},
    now = Date.now(),
  ): Promise<boolean> {
    const more = assignments(set);
    const r = await this.db.execute({
      sql: `UPDATE nodes SET ${["status = ?", "status_reason = ?", "status_at = ?", ...more.sql].join(", ")}
            WHERE id = ? AND status IN (${from.map(() => "?").join(",")})`,
      args: [to, reason, now, ...more.args, id, ...from],
    });
    return r.rowsAffected === 1;
  }

  async update(id: string, set: NodeFields): Promise<void> {
    const { sql, args } = assignments(set);
    if (sql.length === 0) return;
    await this.db.execute({ sql: `UPDATE nodes SET ${sql.join(", ")} WHERE id = ?`, args: [...args, id] });
  }

  /** When the node's agent first reported ready; a later ready (a restarted agent) keeps the first time. */
  async firstReady(id: string, at: number): Promise<void> {
    await this.db.execute({ sql: "UPDATE nodes SET ready_at = COALESCE(ready_at, ?) WHERE id = ?", args: [at, id] });
  }

  /**
   * An accepted heartbeat: the node's liveness, tasks and last sample, and the warnings and errors it carried,
   * in one write. A resent problem (its heartbeat's answer was lost) updates its row instead of adding one;
   * then only the newest `NODE_PROBLEMS_KEPT` stay.
   */
  async recordHeartbeat(id: string, hb: HeartbeatWrite, now = Date.now()): Promise<void> {
    const set: Record<string, InValue> = { last_heartbeat_at: now, active_tasks: JSON.stringify(hb.activeTasks) };
    if (hb.metrics) set.last_metrics = JSON.stringify(hb.metrics);
    const cols = Object.keys(set);
    const update = {
      sql: `UPDATE nodes SET ${cols.map((c) => `${c} = ?`).join(", ")} WHERE id = ?`,
      args: [...cols.map((c) => set[c]!), id],
    };
    if (hb.problems.length === 0) {
      await this.db.execute(update);
      return;
    }
    await this.db.batch([
      update,
      ...hb.problems.map((p) => ({
        sql: `INSERT INTO node_problems (node_id, at, level, type, message, task_id, repeats, last_at, received_at)
              VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
              ON CONFLICT (node_id, at, type, task_id, message) DO UPDATE SET
                repeats = max(repeats, excluded.repeats),
                last_at = COALESCE(max(last_at, excluded.last_at), last_at, excluded.last_at)`,
        args: [id, p.at, p.level, p.type, p.message, p.taskId ?? "", p.repeats ?? 0, p.lastAt ?? null, now],
      })),
      {
        sql: `DELETE FROM node_problems WHERE node_id = ? AND id NOT IN
                (SELECT id FROM node_problems WHERE node_id = ? ORDER BY at DESC, id DESC LIMIT ?)`,
        args: [id, id, NODE_PROBLEMS_KEPT],
      },
    ], "write");
  }

  /** The node's kept warnings and errors, newest first. */
  async problems(id: string): Promise<NodeProblemView[]> {
    const r = await this.db.execute({
      sql: `SELECT at, level, type, message, task_id, repeats, last_at, received_at FROM node_problems
            WHERE node_id = ? ORDER BY at DESC, id DESC LIMIT ?`,
      args: [id, NODE_PROBLEMS_KEPT],
    });
    return r.rows.map((row) => ({
      at: Number(row.at),
      level: String(row.level) as NodeProblemView["level"],
      type: String(row.type),
      message: String(row.message),
      taskId: row.task_id ? String(row.task_id) : null,
      repeats: Number(row.repeats),
      lastAt: num(row.last_at),
      receivedAt: Number(row.received_at),
    }));
  }

  /**
   * Append one live progress marker in a single statement (reports of one boot arrive concurrently), at most
   * `max` per node. False when the node does not exist.
   */
  async appendBootProgress(id: string, marker: BootMarker, max: number): Promise<boolean> {
    const r = await this.db.execute({
      sql: `UPDATE nodes SET boot_progress = json_insert(coalesce(boot_progress, '[]'), '$[#]', json(?))
            WHERE id = ? AND json_array_length(coalesce(boot_progress, '[]')) < ?`,
      args: [JSON.stringify(marker), id, max],
    });
    return r.rowsAffected === 1;
  }

  /** Replace the boot timeline only if it is still `previous` (a compare-and-set: progress and ready race). */
  async swapBootTimeline(id: string, previous: BootTimeline | null, next: BootTimeline): Promise<boolean> {
    const r = await this.db.execute({
      sql: "UPDATE nodes SET boot_timeline = ? WHERE id = ? AND boot_timeline IS ?",
      args: [JSON.stringify(next), id, previous === null ? null : JSON.stringify(previous)],
    });
    return r.rowsAffected === 1;
  }

  async addTimings(id: string, timings: { name: string; at: number }[]): Promise<void> {
    if (timings.length === 0) return;
    await this.db.batch(
      timings.map((t) => ({
        sql: "INSERT OR IGNORE INTO node_timings (node_id, name, at) VALUES (?, ?, ?)",
        args: [id, t.name, t.at],
      })),
      "write",
    );
  }

  async timings(id: string): Promise<{ name: string; at: number }[]> {
    const r = await this.db.execute({
      sql: "SELECT name, at FROM node_timings WHERE node_id = ? ORDER BY at, name",
      args: [id],
    });
    return r.rows.map((row) => ({ name: String(row.name), at: Number(row.at) }));
  }

  /**
   * A node that can take one more task of this key: its own or an unowned warm one, not draining, with a
   * free slot. Ready nodes first, then booting, then provisioning; the oldest first.
   */
  async findSlot(keyId: string, t: Timeouts, now = Date.now()): Promise<NodeRecord | null> {
    const r = await this.db.execute({
      sql: `SELECT * FROM nodes n
            WHERE n.status IN ${LIVE_NODE_SQL} AND (n.owner_key_id = ? OR n.owner_key_id IS NULL)
              AND (n.status <> 'ready' OR COALESCE(n.last_heartbeat_at, n.ready_at) > ?)
              AND n.tasks_on_node < n.slots
            ORDER BY CASE n.status WHEN 'ready' THEN 0 WHEN 'booting' THEN 1 ELSE 2 END, n.owner_key_id IS NULL, n.created_at
            LIMIT 1`,
      args: [keyId, now - t.nodeStale],
    });
    return r.rows[0] ? nodeFromRow(r.rows[0] as Row) : null;
  }

  /** Give an unowned warm node to a key; false when another key got it first. */
  async claim(id: string, keyId: string): Promise<boolean> {
    const r = await this.db.execute({
      sql: "UPDATE nodes SET owner_key_id = ? WHERE id = ? AND (owner_key_id IS NULL OR owner_key_id = ?)",
      args: [keyId, id, keyId],
    });
    return r.rowsAffected === 1;
  }

  /** Nodes counting against SAM_MAX_NODES now. */
  async countCapped(): Promise<number> {
    const r = await this.db.execute(`SELECT COUNT(*) AS n FROM nodes WHERE status IN ${CAPPED_NODE_SQL}`);
    return Number(r.rows[0]?.n ?? 0);
  }

  /** Tasks holding a slot on the node (the count the triggers of migration 0003 keep). */
  async busyCount(id: string): Promise<number> {
    const r = await this.db.execute({ sql: "SELECT tasks_on_node FROM nodes WHERE id = ?", args: [id] });
    return Number(r.rows[0]?.tasks_on_node ?? 0);
  }

  async view(n: NodeRecord, t: Timeouts, now = Date.now()): Promise<NodeView> {
    return {
      id: n.id,
      status: n.status,
      health: nodeHealth(n, t, now),
      statusReason: n.statusReason,
      provider: n.provider,
      providerServerId: n.providerServerId,
      ipv4: n.ipv4,
      ownerKeyId: n.ownerKeyId,
      createdAt: n.createdAt,
      readyAt: n.readyAt,
      lastHeartbeatAt: n.lastHeartbeatAt,
      agentVersion: n.agentVersion,
      agentUrl: n.agentUrl,
      activeTasks: n.activeTasks,
      providerTimings: await this.timings(n.id),
      bootTimeline: n.bootTimeline,
      lastMetrics: n.lastMetrics,
    };
  }
}
