/**
 * Resolves a bearer token to its caller (docs/architecture.md § Identities). The prefix says which table to
 * look in; only SHA-256 hashes are stored, so a lookup by hash is a constant-time question of the index,
 * and the admin token is compared in constant time.
 */
import type { Client } from "../db/client.ts";
import { ACTIVE_SQL, TERMINAL_SQL } from "../tasks/store.ts";
import type { Authenticate, Caller } from "./caller.ts";
import { KeyCache } from "./key-cache.ts";
import { hashToken, randomToken, timingSafeEqualString } from "./tokens.ts";

export const TOKEN_PREFIX = { key: "sam", node: "samnode", agent: "samagent", task: "samtask" } as const;

/**
 * A task inference token: `samtask_<task id>.<40 random characters>`. It names its task, so the edge finds its
 * hash under the task (task_tokens is keyed by task id, then hash): task ids begin with their creation time, so a
 * burst's tokens are filed at the right edge of that index instead of at one random page each (migration 0035).
 * The id is no secret — it is in every API answer about the task; the random part is the secret.
 */
export function taskToken(taskId: string): string {
  return `${TOKEN_PREFIX.task}_${taskId}.${randomToken("x").slice(2)}`;
}

/** The task a task token names; null for one made before tokens named their task (`samtask_<40>`). */
export function taskIdOfToken(token: string): string | null {
  const dot = token.lastIndexOf(".");
  return dot > TOKEN_PREFIX.task.length + 1 ? token.slice(TOKEN_PREFIX.task.length + 1, dot) : null;
}

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
    const taskId = taskIdOfToken(token);
    const r = await db.execute(
      taskId
        ? {
          sql: `SELECT t.id, t.key_id, t.node_id, k.name, k.rate_limit_per_minute
            FROM task_tokens tt JOIN tasks t ON t.id = tt.task_id JOIN api_keys k ON k.id = t.key_id
            WHERE tt.task_id = ? AND tt.token_hash = ? AND t.status NOT IN ${TERMINAL_SQL} AND k.revoked_at IS NULL`,
          args: [taskId, hash],
        }
        : {
          // A token minted before tokens named their task: looked for under the tasks not yet ended (CROSS JOIN
          // keeps that order: the active tasks by their status index, then each one's tokens by key). Such
          // tokens end with their tasks, so this path empties by itself after an upgrade.
          sql: `SELECT t.id, t.key_id, t.node_id, k.name, k.rate_limit_per_minute
            FROM tasks t CROSS JOIN task_tokens tt JOIN api_keys k ON k.id = t.key_id
            WHERE t.status IN ${ACTIVE_SQL} AND tt.task_id = t.id AND tt.token_hash = ? AND k.revoked_at IS NULL`,
          args: [hash],
        },
    );
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
