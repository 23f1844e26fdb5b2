/** API keys in libSQL: only the secret's SHA-256 and its first characters are kept; a revoked key stays. */
import type { Client } from "../db/client.ts";

export type KeyRecord = {
  id: string;
  name: string;
  /** The first characters of the secret, to recognise it; never the secret. */
  prefix: string;
  rateLimitPerMinute: number | null;
  createdAt: number;
  revokedAt: number | null;
};

type Row = Record<string, unknown>;

function keyFromRow(row: Row): KeyRecord {
  return {
    id: String(row.id),
    name: String(row.name),
    prefix: String(row.prefix),
    rateLimitPerMinute: row.rate_limit_per_minute === null ? null : Number(row.rate_limit_per_minute),
    createdAt: Number(row.created_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}

export class KeyStore {
  constructor(private readonly db: Client) {}

  async insert(key: Omit<KeyRecord, "revokedAt"> & { tokenHash: string }): Promise<void> {
    await this.db.execute({
      sql:
        "INSERT INTO api_keys (id, name, token_hash, prefix, rate_limit_per_minute, created_at) VALUES (?, ?, ?, ?, ?, ?)",
      args: [key.id, key.name, key.tokenHash, key.prefix, key.rateLimitPerMinute, key.createdAt],
    });
  }

  /** Every key, revoked ones too, newest first. */
  async list(): Promise<KeyRecord[]> {
    const r = await this.db.execute("SELECT * FROM api_keys ORDER BY created_at DESC, id");
    return r.rows.map((row) => keyFromRow(row as Row));
  }

  async get(id: string): Promise<KeyRecord | null> {
    const r = await this.db.execute({ sql: "SELECT * FROM api_keys WHERE id = ?", args: [id] });
    return r.rows[0] ? keyFromRow(r.rows[0] as Row) : null;
  }

  /** False when the key is unknown or was revoked already. */
  async revoke(id: string, at: number): Promise<boolean> {
    const r = await this.db.execute({
      sql: "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
      args: [at, id],
    });
    return r.rowsAffected === 1;
  }

  /** Whether a key exists and is not revoked: only such a key may own a node. */
  async isActive(id: string): Promise<boolean> {
    const r = await this.db.execute({ sql: "SELECT 1 FROM api_keys WHERE id = ? AND revoked_at IS NULL", args: [id] });
    return r.rows.length > 0;
  }
}
