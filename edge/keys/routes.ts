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
import type { KeyStore } from "./store.ts";

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

/** `onRevoked` lets this instance's auth cache forget a key the moment it is revoked. */
export function keyRoutes(
  keys: KeyStore,
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
    await keys.insert({
      id,
      name: input.name,
      tokenHash: hashToken(secret),
      prefix: secret.slice(0, 8),
      rateLimitPerMinute: input.rateLimitPerMinute,
      createdAt: now,
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
    const data: KeyView[] = await keys.list();
    return c.json({ data, nextCursor: null });
  });

  app.get("/:id", async (c) => {
    const key: KeyView | null = await keys.get(c.req.param("id"));
    if (!key) throw new HttpError(404, `no API key ${c.req.param("id")}`, { code: "key_not_found" });
    return c.json(key);
  });

  app.delete("/:id", async (c) => {
    const id = c.req.param("id");
    const revoked = await keys.revoke(id, Date.now());
    onRevoked(id);
    if (!revoked && !(await keys.get(id))) throw new HttpError(404, `no API key ${id}`, { code: "key_not_found" });
    return c.json({ id, revoked: true });
  });

  return app;
}
