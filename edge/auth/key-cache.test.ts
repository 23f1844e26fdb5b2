// The API-key cache: one lookup per burst, revocation here at once, revocation elsewhere within the TTL.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, openDatabase } from "../db/client.ts";
import { migrate } from "../db/migrate.ts";
import { MIGRATIONS } from "../db/migrations.ts";
import { createAuthenticate } from "./authenticate.ts";
import { KeyCache } from "./key-cache.ts";
import { hashToken, randomToken } from "./tokens.ts";

let dir: string;
let db: Client;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sam-keycache-"));
  db = await openDatabase(`file:${join(dir, "edge.db")}`, null);
  await migrate(db, MIGRATIONS);
});
afterAll(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

async function insertKey(id: string): Promise<string> {
  const secret = randomToken("sam");
  await db.execute({
    sql: "INSERT INTO api_keys (id, name, token_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)",
    args: [id, `name-${id}`, hashToken(secret), secret.slice(0, 8), Date.now()],
  });
  return secret;
}

/** Revoke the way another edge instance would: in the database only, this instance's cache not told. */
const revokeElsewhere = (id: string) =>
  db.execute({ sql: "UPDATE api_keys SET revoked_at = 1 WHERE id = ?", args: [id] });

function clock() {
  const c = { t: 1_000_000, now: () => c.t };
  return c;
}

describe("API key cache", () => {
  test("a key revoked by another instance keeps working here only until the TTL runs out", async () => {
    const c = clock();
    const authenticate = createAuthenticate(db, "admin-token-0123456789", new KeyCache({ ttlMs: 5_000, now: c.now }));
    const secret = await insertKey("key_elsewhere");
    expect(await authenticate(secret)).toEqual({
      kind: "key",
      keyId: "key_elsewhere",
      name: "name-key_elsewhere",
      rateLimitPerMinute: null,
    });
    await revokeElsewhere("key_elsewhere");
    c.t += 4_999;
    expect((await authenticate(secret))?.kind).toBe("key");
    c.t += 1;
    expect(await authenticate(secret)).toBeNull();
  });

  test("a key revoked in this instance stops working at once, other keys stay cached", async () => {
    const c = clock();
    const cache = new KeyCache({ now: c.now });
    const authenticate = createAuthenticate(db, "admin-token-0123456789", cache);
    const revoked = await insertKey("key_here");
    const kept = await insertKey("key_kept");
    expect((await authenticate(revoked))?.kind).toBe("key");
    expect((await authenticate(kept))?.kind).toBe("key");
    await revokeElsewhere("key_here");
    cache.revoked("key_here");
    expect(await authenticate(revoked)).toBeNull();
    // Still answered from the cache: the database says nothing else about it, so delete the row to prove it.
    await db.execute({ sql: "DELETE FROM api_keys WHERE id = 'key_kept'" });
    expect((await authenticate(kept))?.kind).toBe("key");
  });

  test("a lookup that raced a revocation is not cached", async () => {
    const cache = new KeyCache();
    const secret = await insertKey("key_race");
    const hash = hashToken(secret);
    const ticket = cache.ticket(); // the lookup starts and reads the row (still valid) ...
    cache.revoked("key_race"); // ... the key is revoked meanwhile ...
    cache.set(hash, { kind: "key", keyId: "key_race", name: "n", rateLimitPerMinute: null }, ticket);
    expect(cache.get(hash)).toBeNull(); // ... so what it read is not trusted later
  });

  test("unknown and garbage tokens are never cached: a key created afterwards works at once", async () => {
    const authenticate = createAuthenticate(db, "admin-token-0123456789", new KeyCache());
    const secret = randomToken("sam");
    expect(await authenticate(secret)).toBeNull();
    await db.execute({
      sql: "INSERT INTO api_keys (id, name, token_hash, prefix, created_at) VALUES ('key_late', 'late', ?, 'sam_', 1)",
      args: [hashToken(secret)],
    });
    expect((await authenticate(secret))?.kind).toBe("key");
  });
});
