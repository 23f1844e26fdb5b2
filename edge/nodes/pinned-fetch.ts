/**
 * The `fetch` options that make a call to an `https` agent trust exactly the certificate that agent reported
 * in its ready callback (a self-signed, non-CA certificate naming the node's IP; cloud-init/boot-plan.ts makes
 * it, edge/callbacks/callbacks.ts checks it against the reported fingerprint). Under Deno: an `HttpClient`
 * with that certificate as its CA, one per certificate; under Bun: `tls.ca`, which replaces the default CAs.
 * Deno adds `caCerts` to its built-in roots, so there a publicly trusted certificate for the node's IP would
 * pass too — which only the holder of that IP can obtain. docs/protocol.md § TLS.
 */

type HttpClientLike = { close(): void };
type DenoLike = { createHttpClient(options: { caCerts: string[] }): HttpClientLike };

const deno = (globalThis as { Deno?: Partial<DenoLike> }).Deno;
const MAX_CLIENTS = 256;
const clients = new Map<string, HttpClientLike>();

/** Extra `RequestInit` fields for a call that trusts `certificate` (PEM) as the agent's, and no other. */
export function pinnedTls(certificate: string): Record<string, unknown> {
  if (!deno?.createHttpClient) return { tls: { ca: certificate } };
  let client = clients.get(certificate);
  if (client) {
    clients.delete(certificate); // most recently used last
  } else {
    client = deno.createHttpClient({ caCerts: [certificate] });
    if (clients.size >= MAX_CLIENTS) {
      const [oldest, old] = clients.entries().next().value!;
      clients.delete(oldest);
      old.close();
    }
  }
  clients.set(certificate, client);
  return { client };
}

/** A TLS verification failure, as either runtime words it. */
export function isCertificateError(text: string): boolean {
  return /certificate|UnknownIssuer|NotValidForName|CERT_|UNABLE_TO_VERIFY|SELF_SIGNED/i.test(text);
}
