/**
 * A short-lived cache of authenticated API keys, so a burst of requests with one key costs one database
 * lookup instead of one each. Only successful API-key lookups are kept (never unknown tokens, which would let
 * anyone fill memory, nor node or task tokens); entries are found by the token's SHA-256, never by the secret.
 *
 * The bound on revocation: `DELETE /api/keys/:id` forgets the key in this instance at once; another edge
 * instance that has the key cached accepts it for at most `KEY_CACHE_TTL_MS` more.
 */
import type { Caller } from "./caller.ts";

export type KeyCaller = Extract<Caller, { kind: "key" }>;

/** How long an authenticated key is trusted without asking the database again. */
export const KEY_CACHE_TTL_MS = 5_000;
const MAX_ENTRIES = 10_000;

export class KeyCache {
  private readonly entries = new Map<string, { caller: KeyCaller; expiresAt: number }>();
  /** Bumped by every revocation: a lookup that started before one must not cache what it read. */
  private revocations = 0;

  constructor(private readonly o: { ttlMs?: number; now?: () => number } = {}) {}

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  get(tokenHash: string): KeyCaller | null {
    const entry = this.entries.get(tokenHash);
    if (!entry) return null;
    if (entry.expiresAt > this.now()) return entry.caller;
    this.entries.delete(tokenHash);
    return null;
  }

  /** A ticket to pass to `set`: taken before the database lookup whose result will be cached. */
  ticket(): number {
    return this.revocations;
  }

  set(tokenHash: string, caller: KeyCaller, ticket: number): void {
    if (ticket !== this.revocations) return; // a key was revoked while this lookup ran: don't trust it
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(tokenHash, { caller, expiresAt: this.now() + (this.o.ttlMs ?? KEY_CACHE_TTL_MS) });
  }

  /** The key was revoked in this instance: it stops working here at once. */
  revoked(keyId: string): void {
    this.revocations++;
    for (const [hash, entry] of this.entries) if (entry.caller.keyId === keyId) this.entries.delete(hash);
  }
}
