// Sealed secrets: what opens, what does not, and the start-up step that seals what older edges kept plain.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, openDatabase } from "../db/client.ts";
import { migrate } from "../db/migrate.ts";
import { MIGRATIONS } from "../db/migrations.ts";
import { resolveSecretKey, sealPlainSecrets, SecretBox, verifySecretKey } from "./secret-box.ts";

let dir: string;
let db: Client;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sam-secretbox-"));
  db = await openDatabase(`file:${join(dir, "sam.db")}`, null);
  await migrate(db, MIGRATIONS);
});
afterAll(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const key = (byte: number) => new Uint8Array(32).fill(byte);

describe("secret box", () => {
  test("a sealed value opens with its key only, and a changed byte is refused", async () => {
    const box = await SecretBox.fromKey(key(1));
    const sealed = await box.seal("samagent_plain");
    expect(sealed).not.toContain("samagent_plain");
    expect(SecretBox.isSealed(sealed)).toBe(true);
    expect(await box.seal("samagent_plain")).not.toBe(sealed); // a fresh IV each time
    expect(await box.open(sealed)).toBe("samagent_plain");
    await expect((await SecretBox.fromKey(key(2))).open(sealed)).rejects.toThrow();
    const last = sealed.at(-2) === "A" ? "B" : "A";
    await expect(box.open(`${sealed.slice(0, -2)}${last}${sealed.at(-1)}`)).rejects.toThrow();
  });

  test("the key is generated once into the data dir, 0600, and read back", () => {
    const keyDir = join(dir, "keys");
    const first = resolveSecretKey(null, keyDir);
    expect(first.source).toBe("generated");
    expect(statSync(first.path!).mode & 0o777).toBe(0o600);
    expect(statSync(keyDir).mode & 0o777).toBe(0o700);
    const again = resolveSecretKey(null, keyDir);
    expect(again.source).toBe("file");
    expect(again.key).toEqual(first.key);
    expect(resolveSecretKey(key(3), keyDir)).toMatchObject({ source: "env", path: null });
  });

  test("plain agent tokens and live tasks' credentials left by an older edge are sealed at start; the wrong key is refused", async () => {
    const box = await SecretBox.fromKey(key(4));
    await db.execute(
      `INSERT INTO nodes (id, status, status_at, provider, node_token_hash, agent_token, slots, created_at)
      VALUES ('n-old', 'ready', 1, 'local', 'h-old', 'samagent_oldplain', 2, 1)`,
    );
    await db.execute(
      `INSERT INTO tasks (id, key_id, request_hash, status, status_at, prompt, repo_url, repo_credential, agent, labels, created_at, updated_at)
      VALUES ('t_old', 'key_x', 'r', 'running', 1, 'p', '/repo', 'cred_oldplain', '{"type":"builtin"}', '{}', 1, 1)`,
    );
    await verifySecretKey(db, box);
    expect(await sealPlainSecrets(db, box)).toBe(2);
    expect(await sealPlainSecrets(db, box)).toBe(0);
    const node = (await db.execute("SELECT agent_token FROM nodes WHERE id = 'n-old'")).rows[0]!;
    const task = (await db.execute("SELECT repo_credential FROM tasks WHERE id = 't_old'")).rows[0]!;
    expect(await box.open(String(node.agent_token))).toBe("samagent_oldplain");
    expect(await box.open(String(task.repo_credential))).toBe("cred_oldplain");
    await expect(verifySecretKey(db, await SecretBox.fromKey(key(5)))).rejects.toThrow(/SAM_SECRET_KEY/);
  });
});
