/**
 * API keys (`POST|GET|DELETE /api/keys`, admin only). The secret `sam_…` is shown once on creation and
 * stored only as its SHA-256; a deleted key is revoked (kept for its tasks and usage), not erased.
 */
import { Hono } from "hono";
import * as v from "valibot";
import { HttpError } from "../../shared/errors.ts";
import { parseOrThrow, readJsonBody } from "../../shared/validate.ts";
import { type CallerEnv, guard } from "../auth/guard.ts";
import type { Authenticate } from "../auth/caller.ts";
import { TOKEN_PREFIX } from "../auth/authenticate.ts";
import { hashToken, randomToken } from "../auth/tokens.ts";
import type { Client } from "../db/client.ts";

export const KeyCreation = v.strictObject({
  name: v.pipe(v.string(), v.minLength(1, "name must not be empty"), v.maxLength(200)),
  rateLimitPerMinute: v.optional(
    v.nullable(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1_000_000))),
    null,
  ),
});

export const KeyView = v.object({
  id: v.string(),
  name: v.string(),
  /** The first characters of the secret, to recognise it; never the secret. */
  prefix: v.string(),
  rateLimitPerMinute: v.nullable(v.number()),
  createdAt: v.number(),
  revokedAt: v.nullable(v.number()),
});
export type KeyView = v.InferOutput<typeof KeyView>;

function keyView(row: Record<string, unknown>): KeyView {
  return {
    id: String(row.id),
    name: String(row.name),
    prefix: String(row.prefix),
    rateLimitPerMinute: row.rate_limit_per_minute === null ? null : Number(row.rate_limit_per_minute),
    createdAt: Number(row.created_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}

/** `onRevoked` lets this instance's auth cache forget a key the moment it is revoked. */
export function keyRoutes(
  db: Client,
  authenticate: Authenticate,
  onRevoked: (keyId: string) => void = () => {},
): Hono<CallerEnv> {
  const app = new Hono<CallerEnv>();
  app.use("*", guard(authenticate, "admin"));

  app.post("/", async (c) => {
    const input = parseOrThrow(KeyCreation, await readJsonBody(c.req.raw));
    const secret = randomToken(TOKEN_PREFIX.key);
    const id = `key_${randomToken("k").slice(2, 18)}`;
    const now = Date.now();
    await db.execute({
      sql:
        "INSERT INTO api_keys (id, name, token_hash, prefix, rate_limit_per_minute, created_at) VALUES (?, ?, ?, ?, ?, ?)",
      args: [id, input.name, hashToken(secret), secret.slice(0, 8), input.rateLimitPerMinute, now],
    });
    const view: KeyView = {
      id,
      name: input.name,
      prefix: secret.slice(0, 8),
      rateLimitPerMinute: input.rateLimitPerMinute,
      createdAt: now,
      revokedAt: null,
    };
    return c.json({ ...view, key: secret }, 201);
  });

  app.get("/", async (c) => {
    const r = await db.execute("SELECT * FROM api_keys ORDER BY created_at DESC, id");
    return c.json({ data: r.rows.map((row) => keyView(row as Record<string, unknown>)), nextCursor: null });
  });

  app.get("/:id", async (c) => {
    const r = await db.execute({ sql: "SELECT * FROM api_keys WHERE id = ?", args: [c.req.param("id")] });
    if (!r.rows[0]) throw new HttpError(404, `no API key ${c.req.param("id")}`, { code: "key_not_found" });
    return c.json(keyView(r.rows[0] as Record<string, unknown>));
  });

  app.delete("/:id", async (c) => {
    const id = c.req.param("id");
    const r = await db.execute({
      sql: "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
      args: [Date.now(), id],
    });
    onRevoked(id);
    if (r.rowsAffected === 0) {
      const exists = await db.execute({ sql: "SELECT 1 FROM api_keys WHERE id = ?", args: [id] });
      if (!exists.rows[0]) throw new HttpError(404, `no API key ${id}`, { code: "key_not_found" });
    }
    return c.json({ id, revoked: true });
  });

  return app;
}
