/** Secret tokens: generation, storage hashes and constant-time comparison (Bun, Deno and Node alike). */
import { createHash } from "node:crypto";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** `prefix_` + 40 random base62 characters (~238 bits). */
export function randomToken(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(40));
  let out = "";
  for (const b of bytes) out += ALPHABET[b % 62];
  return `${prefix}_${out}`;
}

/**
 * SHA-256 hex of a string. Synchronous `node:crypto`, not `crypto.subtle`: under Deno a Web Crypto digest is
 * an async op that hops to a worker thread (≈ 36–40 µs of CPU per call against ≈ 1 µs), and it is on the hot
 * path: every request with an API key hashes its token (the key cache is keyed by the hash), a submission
 * also hashes its body.
 */
export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** SHA-256 hex; tokens are high-entropy, so a fast hash is the right storage form (no need for a KDF). */
export function hashToken(token: string): string {
  return sha256Hex(token);
}

const utf8 = new TextEncoder();

/** Compare two strings in time independent of where they differ. */
export function timingSafeEqualString(a: string, b: string): boolean {
  const ea = utf8.encode(a);
  const eb = utf8.encode(b);
  let diff = ea.length ^ eb.length;
  const n = Math.max(ea.length, eb.length);
  for (let i = 0; i < n; i++) diff |= (ea[i] ?? 0) ^ (eb[i] ?? 0);
  return diff === 0;
}
