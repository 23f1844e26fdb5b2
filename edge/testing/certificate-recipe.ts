/**
 * The `openssl req` arguments of a node's self-signed certificate as cloud-init makes it (cloud-init/boot-plan.ts
 * § tls: P-256, the node's IP in subjectAltName, no CA). Runtime-neutral, so the Bun and the Deno tests that
 * make certificates share one recipe.
 */
export function selfSignedCertificateArgs(
  name: string,
  paths: { key: string; cert: string },
  o: { ip?: string; ca?: boolean } = {},
): string[] {
  return [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-addext",
    `subjectAltName=DNS:${name},IP:${o.ip ?? "127.0.0.1"}`,
    // `ca: true` leaves the certificate as openssl makes it by default (a CA).
    ...(o.ca ? [] : [
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-addext",
      "keyUsage=critical,digitalSignature",
      "-addext",
      "extendedKeyUsage=serverAuth",
    ]),
    "-keyout",
    paths.key,
    "-out",
    paths.cert,
  ];
}
