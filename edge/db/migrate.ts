/**
 * Versioned schema migrations, applied at start. Each migration runs in one write transaction that first
 * claims its id in `schema_migrations`; a second instance starting at the same time finds the claim and
 * skips, so concurrent starts are safe.
 */
import type { Client } from "@libsql/client";

export type Migration = { id: string; statements: string[] };

export async function migrate(db: Client, migrations: Migration[]): Promise<string[]> {
  await db.execute(
    "CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
  );
  const applied: string[] = [];
  for (const m of migrations) {
    const tx = await db.transaction("write");
    try {
      const claim = await tx.execute({
        sql: "INSERT OR IGNORE INTO schema_migrations (id, applied_at) VALUES (?, ?)",
        args: [m.id, Date.now()],
      });
      if (claim.rowsAffected === 0) {
        await tx.rollback();
        continue;
      }
      for (const sql of m.statements) await tx.execute(sql);
      await tx.commit();
      applied.push(m.id);
    } catch (err) {
      await tx.rollback().catch(() => {});
      throw new Error(`migration ${m.id} failed: ${(err as Error).message}`);
    } finally {
      tx.close();
    }
  }
  return applied;
}
