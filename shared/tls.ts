/**
 * The agent's self-signed certificate as both sides see it: the agent reports its certificate (PEM) and its
 * SHA-256 fingerprint in the ready callback; the edge checks one against the other and pins the certificate
 * for its calls to that agent (docs/protocol.md § TLS). Pure functions, without `node:crypto` (which the idle
 * agent does not load; it hashes with Bun's hasher): the edge parses the certificate with `X509Certificate`.
 */

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/;

/** The first certificate of a PEM text, normalised to its own block (a key or a chain after it is dropped). */
export function firstCertificatePem(pem: string): string | null {
  const m = PEM_CERTIFICATE.exec(pem);
  if (!m) return null;
  const body = m[1]!.replace(/\s+/g, "");
  if (body.length === 0) return null;
  return `-----BEGIN CERTIFICATE-----\n${body.match(/.{1,64}/g)!.join("\n")}\n-----END CERTIFICATE-----\n`;
}

/** The DER bytes of the first certificate in `pem`, or null when there is none (or its base64 is broken). */
export function certificateDer(pem: string): Uint8Array | null {
  const m = PEM_CERTIFICATE.exec(pem);
  if (!m) return null;
  try {
    const binary = atob(m[1]!.replace(/\s+/g, ""));
    return binary.length === 0 ? null : Uint8Array.from(binary, (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

/** `AB:CD:…`, as `openssl x509 -fingerprint -sha256` prints it, from a hex digest. */
export function formatFingerprint(hexDigest: string): string {
  return hexDigest.toUpperCase().match(/../g)!.join(":");
}

/** Fingerprints compare without regard to case or colons (both are spelled either way). */
export function sameFingerprint(a: string, b: string): boolean {
  const norm = (s: string) => s.replace(/:/g, "").toUpperCase();
  return norm(a) === norm(b);
}
