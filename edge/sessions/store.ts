/**
 * Admin page sessions in libSQL. The browser's cookie carries a random secret; the database keeps only its
 * SHA-256, an expiry (`SAM_ADMIN_SESSION_TTL` from login) and whether it was revoked — by logging out, or by
 * the admin through `DELETE /api/sessions/:id`. The admin token itself never travels in a cookie.
 */
import type { Client } from "../db/client.ts";
import { hashToken, randomToken } from "../auth/tokens.ts";

export type AdminSessionView = {
  id: string;
  createdAt: number;
  expiresAt: number;
  lastSeenAt: number;
  userAgent: string | null;
};

/** What the admin pages need of sessions (an in-memory one stands in for it where there is no database). */
export type AdminSessions = {
  /** A new session; the returned secret goes into the cookie and nowhere else. */
  open(meta: { userAgent: string | null }): Promise<{ secret: string; expiresAt: number }>;
  /** Whether the cookie's secret belongs to a live session. */
  check(secret: string): Promise<boolean>;
  /** Logging out: the secret stops working at once, on every instance. */
  close(secret: string): Promise<void>;
};

/** A session's last-seen time is written at most this often, so browsing the pages is not a write each. */
const LAST_SEEN_GRANULARITY_MS = 60_000;

export class SessionStore implements AdminSessions {
  constructor(
    private readonly db: Client,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async open(meta: { userAgent: string | null }): Promise<{ secret: string; expiresAt: number }> {
    const secret = randomToken("samsess");
    const id = `ses_${randomToken("s").slice(2, 18)}`;
    const now = this.now();
    const expiresAt = now + this.ttlMs;
    await this.db.execute({
      sql:
        "INSERT INTO admin_sessions (id, secret_hash, created_at, expires_at, last_seen_at, user_agent) VALUES (?, ?, ?, ?, ?, ?)",
      args: [id, hashToken(secret), now, expiresAt, now, meta.userAgent?.slice(0, 300) ?? null],
    });
    return { secret, expiresAt };
  }

  async check(secret: string): Promise<boolean> {
    const now = this.now();
    const r = await this.db.execute({
      sql:
        "SELECT id, last_seen_at FROM admin_sessions WHERE secret_hash = ? AND revoked_at IS NULL AND expires_at > ?",
      args: [hashToken(secret), now],
    });
    const row = r.rows[0];
    if (!row) return false;
    if (now - Number(row.last_seen_at) >= LAST_SEEN_GRANULARITY_MS) {
      await this.db.execute({
        sql: "UPDATE admin_sessions SET last_seen_at = ? WHERE id = ?",
        args: [now, String(row.id)],
      });
    }
    return true;
  }

  async close(secret: string): Promise<void> {
    await this.db.execute({
      sql: "UPDATE admin_sessions SET revoked_at = ? WHERE secret_hash = ? AND revoked_at IS NULL",
      args: [this.now(), hashToken(secret)],
    });
  }

  /** Live sessions, newest first. Expired and revoked ones are not shown (and are pruned here). */
  async list(): Promise<AdminSessionView[]> {
    const now = this.now();
    await this.db.execute({
      sql: "DELETE FROM admin_sessions WHERE expires_at <= ? OR revoked_at IS NOT NULL",
      args: [now],
    });
    const r = await this.db.execute({
      sql:
        "SELECT id, created_at, expires_at, last_seen_at, user_agent FROM admin_sessions WHERE revoked_at IS NULL AND expires_at > ? ORDER BY created_at DESC, id",
      args: [now],
    });
    return r.rows.map((row) => ({
      id: String(row.id),
      createdAt: Number(row.created_at),
      expiresAt: Number(row.expires_at),
      lastSeenAt: Number(row.last_seen_at),
      userAgent: row.user_agent === null ? null : String(row.user_agent),
    }));
  }

  /** Revoke a session by its id; false when there is no live session with that id. */
  async revoke(id: string): Promise<boolean> {
    const r = await this.db.execute({
      sql: "UPDATE admin_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL AND expires_at > ?",
      args: [this.now(), id, this.now()],
    });
    return r.rowsAffected === 1;
  }
}
