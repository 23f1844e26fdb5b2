/** The edge's schema, in order. Append only: a migration that has shipped is never edited. */
import type { Migration } from "./migrate.ts";

export const MIGRATIONS: Migration[] = [
  {
    id: "0001-meta",
    statements: [
      "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ],
  },
];
