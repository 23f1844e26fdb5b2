/** Admin sessions in memory, for the admin pages mounted over a fake API (the edge keeps them in libSQL). */
import type { AdminSessions } from "../sessions/store.ts";

export function memorySessions(ttlMs = 3_600_000): AdminSessions & { live: Set<string> } {
  const live = new Set<string>();
  return {
    live,
    async open() {
      const secret = `samsess_${crypto.randomUUID().replace(/-/g, "")}`;
      live.add(secret);
      return { secret, expiresAt: Date.now() + ttlMs };
    },
    async check(secret) {
      return live.has(secret);
    },
    async close(secret) {
      live.delete(secret);
    },
  };
}
