/**
 * Resolves a bearer token to its caller (docs/architecture.md § Identities). The prefix says which table to
 * look in; only SHA-256 hashes are stored, so a lookup by hash is a constant-time question of the index,
 * and the admin token is compared in constant time.
 */
import type { Client } from "../db/client.ts";
import { TERMINAL_SQL } from "../tasks/store.ts";
import type { Authenticate, Caller } from "./caller.ts";
import { KeyCache } from "./key-cache.ts";
import { hashToken, timingSafeEqualString } from "./tokens.ts";

export const TOKEN_PREFIX = { key: "sam", node: "samnode", agent: "samagent", task: "samtask" } as const;

/** `keys` caches API-key lookups briefly (see key-cache.ts for the bound on revocation). */
export function createAuthenticate(db: Client, adminToken: string, keys = new KeyCache()): Authenticate {
  return async (token: string): Promise<Caller | null> => {
    if (timingSafeEqualString(token, adminToken)) return { kind: "admin" };
    const prefix = token.slice(0, token.indexOf("_"));
    if (prefix !== "sam" && prefix !== "samnode" && prefix !== "samtask") return null;
    const hash = hashToken(token);
    if (prefix === "sam") {
      const cached = keys.get(hash);
      if (cached) return cached;
      const ticket = keys.ticket();
      const r = await db.execute({
        sql: "SELECT id, name, rate_limit_per_minute FROM api_keys WHERE token_hash = ? AND revoked_at IS NULL",
        args: [hash],
      });
      const row = r.rows[0];
      if (!row) return null;
      const caller = {
        kind: "key",
        keyId: String(row.id),
        name: String(row.name),
        rateLimitPerMinute: nullableNumber(row.rate_limit_per_minute),
      } as const;
      keys.set(hash, caller, ticket);
      return caller;
    }
    if (prefix === "samnode") {
      const r = await db.execute({
        sql: "SELECT id FROM nodes WHERE node_token_hash = ? AND status NOT IN ('deleted','failed')",
        args: [hash],
      });
      const row = r.rows[0];
      return row ? { kind: "node", nodeId: String(row.id) } : null;
    }
    const r = await db.execute({
      sql: `SELECT t.id, t.key_id, t.node_id, k.name, k.rate_limit_per_minute
            FROM task_tokens tt JOIN tasks t ON t.id = tt.task_id JOIN api_keys k ON k.id = t.key_id
            WHERE tt.token_hash = ? AND t.status NOT IN ${TERMINAL_SQL} AND k.revoked_at IS NULL`,
      args: [hash],
    });
    const row = r.rows[0];
    if (!row) return null;
    return {
      kind: "task",
      taskId: String(row.id),
      keyId: String(row.key_id),
      name: String(row.name),
      nodeId: row.node_id === null ? null : String(row.node_id),
      rateLimitPerMinute: nullableNumber(row.rate_limit_per_minute),
    };
  };
}

function nullableNumber(x: unknown): number | null {
  return x === null || x === undefined ? null : Number(x);
}
