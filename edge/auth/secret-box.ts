/**
 * Secrets the edge must read back (the agent tokens it presents to agents, repo credentials until their task
 * ends) are sealed with AES-256-GCM before they reach the database, so a copy of `sam.db` or a database
 * backup alone reveals none of them. Web Crypto, so the same code runs under Deno and Bun.
 *
 * The key is `SAM_SECRET_KEY`, or generated once into the data dir (0600) for a local start. A check value
 * in `meta` makes a start with a different key fail at once, naming the variable, instead of every later
 * call to an agent failing with an unexplained 401.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Client } from "../db/client.ts";
import { parseSecretKey } from "../config.ts";
import { ACTIVE_SQL } from "../tasks/store.ts";
import { ensurePrivateDir, ensurePrivateFile } from "./private-files.ts";

/** Marks a sealed value: version, then base64url of IV ‖ ciphertext ‖ tag. Plain tokens never start so. */
const SEALED_PREFIX = "sealed1.";
const IV_BYTES = 12;

export class SecretBox {
  private constructor(private readonly key: CryptoKey) {}

  static async fromKey(bytes: Uint8Array): Promise<SecretBox> {
    const key = await crypto.subtle.importKey("raw", bytes as Uint8Array<ArrayBuffer>, "AES-GCM", false, [
      "encrypt",
      "decrypt",
    ]);
    return new SecretBox(key);
  }

  static isSealed(value: string): boolean {
    return value.startsWith(SEALED_PREFIX);
  }

  async seal(plain: string): Promise<string> {
    const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
    const ct = new Uint8Array(
      await crypto.subtle.encrypt({ name: "AES-GCM", iv }, this.key, new TextEncoder().encode(plain)),
    );
    const out = new Uint8Array(IV_BYTES + ct.length);
    out.set(iv);
    out.set(ct, IV_BYTES);
    return SEALED_PREFIX + toBase64Url(out);
  }

  /** The plain value; throws when it was sealed with another key or altered. */
  async open(sealed: string): Promise<string> {
    if (!SecretBox.isSealed(sealed)) throw new Error("not a sealed value");
    const bytes = fromBase64Url(sealed.slice(SEALED_PREFIX.length)) as Uint8Array<ArrayBuffer>;
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: bytes.subarray(0, IV_BYTES) },
      this.key,
      bytes.subarray(IV_BYTES),
    );
    return new TextDecoder().decode(plain);
  }
}

export type SecretKeySource = { key: Uint8Array; source: "env" | "generated" | "file"; path: string | null };

/** `SAM_SECRET_KEY` when set, else the key file in the data dir, generated (0600) on first start. */
export function resolveSecretKey(configured: Uint8Array | null, dataDir: string): SecretKeySource {
  if (configured) return { key: configured, source: "env", path: null };
  const path = join(dataDir, "secret-key");
  if (existsSync(path)) {
    const key = parseSecretKey(readFileSync(path, "utf8"));
    if (!key) throw new Error(`${path} does not hold a 32-byte key (hex or base64); restore it or set SAM_SECRET_KEY`);
    ensurePrivateFile(path);
    return { key, source: "file", path };
  }
  ensurePrivateDir(dataDir);
  const key = crypto.getRandomValues(new Uint8Array(32));
  writeFileSync(path, `${toBase64Url(key)}\n`, { mode: 0o600, flag: "wx" });
  return { key, source: "generated", path };
}

const CHECK_PLAIN = "sam secret key check";

/**
 * Refuses a key other than the one this database's secrets were sealed with. The first instance to start
 * records a check value; `INSERT OR IGNORE` then a re-read keeps two instances starting at once consistent.
 */
export async function verifySecretKey(db: Client, box: SecretBox): Promise<void> {
  await db.execute({
    sql: "INSERT OR IGNORE INTO meta (key, value) VALUES ('secret_key_check', ?)",
    args: [await box.seal(CHECK_PLAIN)],
  });
  const r = await db.execute("SELECT value FROM meta WHERE key = 'secret_key_check'");
  const ok = await box.open(String(r.rows[0]?.value)).then((p) => p === CHECK_PLAIN, () => false);
  if (!ok) {
    throw new Error(
      "SAM_SECRET_KEY is not the key this database's secrets were sealed with (set the key it was started with)",
    );
  }
}

/**
 * Seals what an older edge stored in plain text: the agent tokens of nodes, the repo credentials of tasks
 * still running. Idempotent and safe beside other instances: each row is replaced only if it still holds
 * the plain value that was read.
 */
export async function sealPlainSecrets(db: Client, box: SecretBox): Promise<number> {
  let sealed = 0;
  const nodes = await db.execute(`SELECT id, agent_token FROM nodes WHERE agent_token NOT LIKE '${SEALED_PREFIX}%'`);
  for (const row of nodes.rows) {
    const plain = String(row.agent_token);
    const r = await db.execute({
      sql: "UPDATE nodes SET agent_token = ? WHERE id = ? AND agent_token = ?",
      args: [await box.seal(plain), String(row.id), plain],
    });
    sealed += r.rowsAffected;
  }
  // Only live tasks hold a credential (an ended one's is dropped), and their statuses are indexed: no scan of
  // the whole task history at every start.
  const tasks = await db.execute(`SELECT id, repo_credential FROM tasks
    WHERE status IN ${ACTIVE_SQL} AND repo_credential IS NOT NULL AND repo_credential NOT LIKE '${SEALED_PREFIX}%'`);
  for (const row of tasks.rows) {
    const plain = String(row.repo_credential);
    const r = await db.execute({
      sql: "UPDATE tasks SET repo_credential = ? WHERE id = ? AND repo_credential = ?",
      args: [await box.seal(plain), String(row.id), plain],
    });
    sealed += r.rowsAffected;
  }
  return sealed;
}

function toBase64Url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(text: string): Uint8Array {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)), (ch) => ch.charCodeAt(0));
}
