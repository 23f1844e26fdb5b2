/**
 * Responses kept for `previous_response_id` and `GET /v1/responses/{id}`: in the edge's database, so every
 * edge instance sharing it can continue a conversation another one answered. A response belongs to the key
 * that made it (another key does not see it), lives for `SAM_RESPONSE_RETENTION`, and one larger than the
 * request body limit is not kept. Expired rows are deleted with each write, so the table holds at most
 * one retention period of responses.
 */
import type { Client } from "@libsql/client";
import type { Migration } from "../../db/migrate.ts";
import type { ChatMessage } from "./translate.ts";

export const RESPONSES_MIGRATION: Migration = {
  id: "inference-0060-responses",
  statements: [
    `CREATE TABLE IF NOT EXISTS inference_responses (
      id TEXT PRIMARY KEY,
      key_id TEXT NOT NULL,
      expires_at INTEGER NOT NULL,
      history TEXT NOT NULL,
      response TEXT NOT NULL
    )`,
    "CREATE INDEX IF NOT EXISTS inference_responses_expiry ON inference_responses (expires_at)",
  ],
};

export type StoredResponse = { history: ChatMessage[]; response: Record<string, unknown> };

export class ResponseStore {
  constructor(
    private readonly db: Client,
    private readonly retentionMs: number,
    private readonly maxBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Keep a response; false when it is too large to keep. */
  async put(id: string, keyId: string, stored: StoredResponse): Promise<boolean> {
    const history = JSON.stringify(stored.history);
    const response = JSON.stringify(stored.response);
    if (history.length + response.length > this.maxBytes) return false;
    const now = this.now();
    await this.db.batch([
      { sql: "DELETE FROM inference_responses WHERE expires_at <= ?", args: [now] },
      {
        sql:
          "INSERT OR REPLACE INTO inference_responses (id, key_id, expires_at, history, response) VALUES (?, ?, ?, ?, ?)",
        args: [id, keyId, now + this.retentionMs, history, response],
      },
    ], "write");
    return true;
  }

  /** A live response of this key, or null (unknown, expired, or another key's: all look the same). */
  async get(id: string, keyId: string): Promise<StoredResponse | null> {
    const rs = await this.db.execute({
      sql: "SELECT history, response FROM inference_responses WHERE id = ? AND key_id = ? AND expires_at > ?",
      args: [id, keyId, this.now()],
    });
    const row = rs.rows[0];
    if (!row) return null;
    return { history: JSON.parse(String(row.history)), response: JSON.parse(String(row.response)) };
  }

  async delete(id: string, keyId: string): Promise<boolean> {
    const rs = await this.db.execute({
      sql: "DELETE FROM inference_responses WHERE id = ? AND key_id = ?",
      args: [id, keyId],
    });
    return rs.rowsAffected > 0;
  }
}
