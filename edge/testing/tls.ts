/**
 * Self-signed certificates as cloud-init makes them for a node (cloud-init/boot-plan.ts § tls: P-256, the
 * node's IP in subjectAltName, no CA), here for 127.0.0.1, made by the real `openssl`.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { selfSignedCertificateArgs } from "./certificate-recipe.ts";

export type TestCertificate = {
  cert: string;
  key: string;
  fingerprint: string;
  certPath: string;
  keyPath: string;
  dir: string;
  remove(): void;
};

/** `ip` is the address in subjectAltName (127.0.0.1); `ca: true` makes it as openssl does by default (a CA). */
export function selfSignedCertificate(name: string, o: { ip?: string; ca?: boolean } = {}): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), "sam-tls-"));
  const certPath = join(dir, "agent.crt");
  const keyPath = join(dir, "agent.key");
  const made = Bun.spawnSync(["openssl", ...selfSignedCertificateArgs(name, { key: keyPath, cert: certPath }, o)], {
    stderr: "pipe",
  });
  if (made.exitCode !== 0) throw new Error(`openssl failed: ${made.stderr.toString()}`);
  const fp = Bun.spawnSync(["openssl", "x509", "-in", certPath, "-noout", "-fingerprint", "-sha256"]).stdout.toString();
  return {
    cert: readFileSync(certPath, "utf8"),
    key: readFileSync(keyPath, "utf8"),
    fingerprint: fp.trim().split("=")[1]!,
    certPath,
    keyPath,
    dir,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
