/**
 * The edge's data dir holds its database, the admin token and the secret key: only the edge's user may
 * read it. Created 0700 / 0600, and tightened when an older edge left it 0755 / 0644.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from "node:fs";
import { dirname } from "node:path";

export function ensurePrivateDir(path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o700);
}

/** Tightens an existing file to 0600; a missing one is left missing. */
export function ensurePrivateFile(path: string): void {
  if (existsSync(path) && (statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
}

/**
 * A SQLite database file made (or tightened to) 0600 before SQLite opens it: SQLite creates its -wal and
 * -shm files with the database file's permissions, so they follow.
 */
export function ensurePrivateDatabase(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  if (!existsSync(path)) closeSync(openSync(path, "a", 0o600));
  for (const p of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) ensurePrivateFile(p);
}
