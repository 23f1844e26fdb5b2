/**
 * Diagnostics that outlive their node: before SAM deletes a node whose agent it can still reach, the edge
 * copies the agent's events and metrics databases into its own database, and serves them for the dead node.
 *
 * Why the edge's database and not an object store: it is the one store every deployment already has (libSQL
 * file, sqld or Turso), the copies are small (bounded below), and the admin reads them through the same
 * routes as a live node's. Each copy is at most `ARCHIVE_MAX_BYTES` (a larger export is skipped, with a
 * note), and copies are dropped after `ARCHIVE_RETENTION_MS`, the agent's own default event retention.
 */
import type { Client } from "../db/client.ts";
import type { AgentClient } from "./agent-client.ts";
import type { NodeRecord } from "./store.ts";

export const ARCHIVE_KINDS = ["events", "metrics"] as const;
export type ArchiveKind = (typeof ARCHIVE_KINDS)[number];
export const ARCHIVE_MAX_BYTES = 16 * 1024 * 1024;
export const ARCHIVE_RETENTION_MS = 7 * 86_400_000;
/** An export of a few MiB from a busy node still arrives in this; a dead agent must not hold up the delete. */
const EXPORT_TIMEOUT_MS = 15_000;

async function readCapped(body: ReadableStream<Uint8Array> | null, max: number): Promise<Uint8Array | null> {
  if (!body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > max) {
      await body.cancel().catch(() => {});
      return null;
    }
    chunks.push(chunk);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

export class NodeArchive {
  constructor(private readonly db: Client) {}

  /** Copy both databases of a node's agent; returns one note per kind (what was kept, or why not). */
  async save(node: NodeRecord, agent: AgentClient, now = Date.now()): Promise<string[]> {
    const notes: string[] = [];
    for (const kind of ARCHIVE_KINDS) {
      try {
        const res = await agent.call(node, `/${kind}/export`, { timeoutMs: EXPORT_TIMEOUT_MS });
        if (res.status !== 200) {
          await res.body?.cancel();
          notes.push(`${kind}: the agent answered HTTP ${res.status}`);
          continue;
        }
        const bytes = await readCapped(res.body, ARCHIVE_MAX_BYTES);
        if (bytes === null) {
          notes.push(`${kind}: over ${ARCHIVE_MAX_BYTES} bytes, not archived`);
          continue;
        }
        await this.db.execute({
          sql: "INSERT OR REPLACE INTO node_archives (node_id, kind, bytes, size, archived_at) VALUES (?, ?, ?, ?, ?)",
          args: [node.id, kind, bytes, bytes.byteLength, now],
        });
        notes.push(`${kind}: ${bytes.byteLength} bytes archived`);
      } catch (err) {
        notes.push(`${kind}: ${(err as Error).message}`);
      }
    }
    await this.db.execute({
      sql: "DELETE FROM node_archives WHERE archived_at < ?",
      args: [now - ARCHIVE_RETENTION_MS],
    });
    return notes;
  }

  async get(
    nodeId: string,
    kind: ArchiveKind,
    now = Date.now(),
  ): Promise<{ bytes: Uint8Array; archivedAt: number } | null> {
    const r = await this.db.execute({
      sql: "SELECT bytes, archived_at FROM node_archives WHERE node_id = ? AND kind = ? AND archived_at >= ?",
      args: [nodeId, kind, now - ARCHIVE_RETENTION_MS],
    });
    const row = r.rows[0];
    if (!row) return null;
    const raw = row.bytes as ArrayBuffer | Uint8Array;
    return { bytes: raw instanceof Uint8Array ? raw : new Uint8Array(raw), archivedAt: Number(row.archived_at) };
  }
}
