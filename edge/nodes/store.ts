/** Nodes in libSQL: credentials (node token hashed, agent token kept), status CAS, heartbeats, timings. */
import type { InValue } from "@libsql/client";
import type { NodeHealth, NodeStatus, NodeView } from "../../shared/wire/api.ts";
import type { AgentCapabilities } from "../../shared/wire/agent.ts";
import type { BootTimeline } from "../../shared/wire/boot.ts";
import type { BootMarker } from "../../agent/boot/markers.ts";
import type { MetricsSample } from "../../shared/wire/metrics.ts";
import type { Timeouts } from "../../shared/timeouts.ts";
import type { Client } from "../db/client.ts";
import { sqlList } from "../tasks/store.ts";

/** Nodes that exist or are coming up: what counts against SAM_MAX_NODES and can take work. */
const LIVE_NODE_SQL = sqlList(["provisioning", "booting", "ready"] satisfies NodeStatus[]);

export type NodeRecord = {
  id: string;
  status: NodeStatus;
  statusReason: string | null;
  statusAt: number;
  provider: "local" | "hetzner";
  providerServerId: string | null;
  ipv4: string | null;
  ownerKeyId: string | null;
  agentToken: string;
  slots: number;
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
export function nodeHealth(n: Pick<NodeRecord, "status" | "lastHeartbeatAt" | "readyAt">, t: Timeouts, now = Date.now()): NodeHealth {
  if (n.status !== "ready" && n.status !== "draining") return "unknown";
  const last = n.lastHeartbeatAt ?? n.readyAt;
  if (last === null) return "unknown";
  const age = now - last;
  if (age >= t.nodeUnhealthy) return "unhealthy";
  if (age >= t.nodeStale) return "stale";
  return "healthy";
}

export class NodeStore {
  constructor(private readonly db: Client) {}

  async insert(n: { id: string; provider: "local" | "hetzner"; ownerKeyId: string | null; nodeTokenHash: string; agentToken: string; slots: number; now: number }): Promise<void> {
    await this.db.execute({
      sql: `INSERT INTO nodes (id, status, status_at, provider, owner_key_id, node_token_hash, agent_token, slots, created_at, idle_since)
            VALUES (?, 'provisioning', ?, ?, ?, ?, ?, ?, ?, ?)`,
      args: [n.id, n.now, n.provider, n.ownerKeyId, n.nodeTokenHash, n.agentToken, n.slots, n.now, n.now],
    });
  }

  async get(id: string): Promise<NodeRecord | null> {
    const r = await this.db.execute({ sql: "SELECT * FROM nodes WHERE id = ?", args: [id] });
    return r.rows[0] ? nodeFromRow(r.rows[0] as Row) : null;
  }

  async list(opts: { includeDeleted: boolean; cursor: string | null; limit: number }): Promise<{ nodes: NodeRecord[]; nextCursor: string | null }> {
    const where: string[] = [];
    const args: InValue[] = [];
    if (!opts.includeDeleted) where.push("status <> 'deleted'");
    if (opts.cursor !== null) (where.push("rowid < ?"), args.push(Number(opts.cursor)));
    args.push(opts.limit + 1);
    const r = await this.db.execute({ sql: `SELECT rowid AS rid, * FROM nodes ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY rowid DESC LIMIT ?`, args });
    const rows = r.rows.slice(0, opts.limit);
    return {
      nodes: rows.map((row) => nodeFromRow(row as Row)),
      nextCursor: r.rows.length > opts.limit ? String(rows[rows.length - 1]!.rid) : null,
    };
  }

  async inStatus(statuses: readonly NodeStatus[]): Promise<NodeRecord[]> {
    const r = await this.db.execute({ sql: `SELECT * FROM nodes WHERE status IN (${statuses.map(() => "?").join(",")})`, args: [...statuses] });
    return r.rows.map((row) => nodeFromRow(row as Row));
  }

  /** Compare-and-set on the node's status. */
  async transition(id: string, from: readonly NodeStatus[], to: NodeStatus, reason: string | null, set: Record<string, InValue> = {}, now = Date.now()): Promise<boolean> {
    const cols = Object.keys(set);
    const r = await this.db.execute({
      sql: `UPDATE nodes SET status = ?, status_reason = ?, status_at = ?${cols.map((c) => `, ${c} = ?`).join("")}
            WHERE id = ? AND status IN (${from.map(() => "?").join(",")})`,
      args: [to, reason, now, ...cols.map((c) => set[c]!), id, ...from],
    });
    return r.rowsAffected === 1;
  }

  async update(id: string, set: Record<string, InValue>): Promise<void> {
    const cols = Object.keys(set);
    await this.db.execute({ sql: `UPDATE nodes SET ${cols.map((c) => `${c} = ?`).join(", ")} WHERE id = ?`, args: [...cols.map((c) => set[c]!), id] });
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
    await this.db.batch(timings.map((t) => ({ sql: "INSERT OR IGNORE INTO node_timings (node_id, name, at) VALUES (?, ?, ?)", args: [id, t.name, t.at] })), "write");
  }

  async timings(id: string): Promise<{ name: string; at: number }[]> {
    const r = await this.db.execute({ sql: "SELECT name, at FROM node_timings WHERE node_id = ? ORDER BY at, name", args: [id] });
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
    const r = await this.db.execute({ sql: "UPDATE nodes SET owner_key_id = ? WHERE id = ? AND (owner_key_id IS NULL OR owner_key_id = ?)", args: [keyId, id, keyId] });
    return r.rowsAffected === 1;
  }

  async countLive(): Promise<number> {
    const r = await this.db.execute(`SELECT COUNT(*) AS n FROM nodes WHERE status IN ${LIVE_NODE_SQL}`);
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
