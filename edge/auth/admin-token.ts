/**
 * The operator's admin token: SAM_ADMIN_TOKEN when set, else generated once into the data dir (0600) so a
 * local first start works with nothing configured.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensurePrivateDir, ensurePrivateFile } from "./private-files.ts";
import { randomToken } from "./tokens.ts";

export type AdminToken = { token: string; source: "env" | "generated" | "file"; path: string | null };

export function resolveAdminToken(configured: string | null, dataDir: string): AdminToken {
  if (configured) return { token: configured, source: "env", path: null };
  const path = join(dataDir, "admin-token");
  if (existsSync(path)) {
    const token = readFileSync(path, "utf8").trim();
    if (token.length >= 16) {
      ensurePrivateFile(path);
      return { token, source: "file", path };
    }
  }
  ensurePrivateDir(dataDir);
  const token = randomToken("samadm");
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  ensurePrivateFile(path);
  return { token, source: "generated", path };
}
