/**
 * The `fetch` options that make a call to an `https` agent trust exactly the certificate that agent reported
 * in its ready callback (a self-signed, non-CA certificate naming the node's IP; cloud-init/boot-plan.ts makes
 * it, edge/callbacks/routes.ts checks it against the reported fingerprint). docs/protocol.md § TLS.
 *
 * How a runtime pins a certificate differs, so the runtime's entry file chooses, as Hono's adapters do: Bun
 * (and so `bun test`) takes `tls.ca`, which replaces the default CAs — the default here; edge/main.ts passes
 * `denoPinnedTls(Deno.createHttpClient)`, an `HttpClient` per certificate. Deno adds `caCerts` to its built-in
 * roots, so there a publicly trusted certificate for the node's IP would pass too — which only the holder of
 * that IP can obtain.
 */

/** Extra `RequestInit` fields for a call that trusts `certificate` (PEM) as the agent's, and no other. */
export type PinnedTls = (certificate: string) => Record<string, unknown>;

/** Bun's form (also what `bun test` drives the edge with). */
export const bunPinnedTls: PinnedTls = (certificate) => ({ tls: { ca: certificate } });

type HttpClientLike = { close(): void };
const MAX_CLIENTS = 256;

/** Deno's form: one `HttpClient` per certificate, the least recently used closed beyond a bound. */
export function denoPinnedTls(createHttpClient: (options: { caCerts: string[] }) => HttpClientLike): PinnedTls {
  const clients = new Map<string, HttpClientLike>();
  return (certificate) => {
    let client = clients.get(certificate);
    if (client) {
      clients.delete(certificate); // most recently used last
    } else {
      client = createHttpClient({ caCerts: [certificate] });
      if (clients.size >= MAX_CLIENTS) {
        const [oldest, old] = clients.entries().next().value!;
        clients.delete(oldest);
        old.close();
      }
    }
    clients.set(certificate, client);
    return { client };
  };
}

/** A TLS verification failure, as either runtime words it. */
export function isCertificateError(text: string): boolean {
  return /certificate|UnknownIssuer|NotValidForName|CERT_|UNABLE_TO_VERIFY|SELF_SIGNED/i.test(text);
}
