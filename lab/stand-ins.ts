/**
 * The stand-in internet a lab VM sees, on host loopback: one HTTPS server (the test CA's certificate names
 * every host) answering by Host header for the agent download, nodejs.org, the npm registry and the container
 * registry under the base image's name; and the CONNECT proxy through which the real edge reaches each VM's
 * agent at the address the agent reported (its certificate names that address, so TLS pinning is exercised
 * end to end). Faults are per VM: a refused image pull, an agent download that never answers.
 */
import { readFileSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import type { LabCa, NodeDist, NpmPackage, OciImage } from "./assets.ts";

export const HOSTS = {
  downloads: "downloads.sam-lab.test",
  nodejs: "nodejs.sam-lab.test",
  npm: "npm.sam-lab.test",
  edge: "edge.sam-lab.test",
} as const;

export type Faults = { refuseImagePull?: boolean; hangAgentDownload?: boolean };
export type StandInAssets = {
  ca: LabCa;
  node: NodeDist;
  cli: NpmPackage;
  image: OciImage;
  agentBinary: string;
  registryHost: string;
  imageRepo: string;
};

export type StandIns = { port: number; requests: string[]; stop(): void };

const file = (path: string, type = "application/octet-stream") =>
  new Response(Bun.file(path), { headers: { "content-type": type } });

export function startStandIns(a: StandInAssets, faults: Faults): StandIns {
  const requests: string[] = [];
  const registryError = (status: number, code: string, message: string) =>
    Response.json({ errors: [{ code, message }] }, { status });
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    tls: { cert: a.ca.cert, key: a.ca.key },
    async fetch(req) {
      const url = new URL(req.url);
      const host = (req.headers.get("host") ?? "").replace(/:\d+$/, "");
      requests.push(`${req.method} ${host}${url.pathname}`);
      if (host === HOSTS.downloads && url.pathname === "/sam-agent") {
        // Answered, then stalled: a byte every few seconds and never the end, like a download behind a broken
        // mirror. (A request never answered at all is closed by the path in between after a while, and the
        // boot's retries then fail the phase instead of leaving it stuck.)
        if (faults.hangAgentDownload) return stalledBody();
        return file(a.agentBinary);
      }
      if (host === HOSTS.nodejs) {
        const base = url.pathname.replace(/^\/dist\/v[^/]+\//, "");
        if (base === a.node.file) return file(a.node.tarball);
        if (base === "SHASUMS256.txt") return file(a.node.sums, "text/plain");
      }
      if (host === HOSTS.npm) {
        const path = decodeURIComponent(url.pathname);
        if (path === `/${a.cli.name}`) {
          const tarball = `https://${HOSTS.npm}/${a.cli.name}/-/cli-${a.cli.version}.tgz`;
          const version = { ...a.cli.manifest, dist: { tarball, shasum: a.cli.shasum, integrity: a.cli.integrity } };
          return Response.json({
            name: a.cli.name,
            "dist-tags": { latest: a.cli.version },
            versions: { [a.cli.version]: version },
          });
        }
        if (path === `/${a.cli.name}/-/cli-${a.cli.version}.tgz`) return file(a.cli.tarball);
      }
      if (host === a.registryHost) {
        if (url.pathname === "/v2/" || url.pathname === "/v2") return Response.json({});
        const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
        if (m && m[1] === a.imageRepo) {
          if (faults.refuseImagePull) return registryError(403, "DENIED", "requested access to the resource is denied");
          if (m[2] === "manifests") {
            const headers = {
              "content-type": "application/vnd.docker.distribution.manifest.v2+json",
              "docker-content-digest": a.image.manifestDigest,
            };
            return new Response(req.method === "HEAD" ? null : a.image.manifest, {
              headers: { ...headers, "content-length": String(Buffer.byteLength(a.image.manifest)) },
            });
          }
          const blob = a.image.blobs.get(m[3]!);
          if (blob) return new Response(readFileSync(blob), { headers: { "docker-content-digest": m[3]! } });
        }
        return registryError(404, "NAME_UNKNOWN", "not found");
      }
      return new Response("not found", { status: 404 });
    },
  });
  return { port: server.port!, requests, stop: () => server.stop(true) };
}

/**
 * `CONNECT host:port` → the loopback port qemu forwards to that VM's agent. The edge runs with `HTTPS_PROXY`
 * pointing here (loopback is `NO_PROXY`), so it dials the address the agent reported and verifies the pinned
 * certificate for it, as it would on a real network.
 */
export function startAgentProxy(routes: Map<string, number>): { port: number; stop(): void } {
  const server = createServer((client: Socket) => {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      client.off("data", onData);
      const target = /^CONNECT (\S+) HTTP\/1\.[01]\r\n/.exec(head.subarray(0, end).toString())?.[1];
      const port = target ? routes.get(target.replace(/^\[|\](?=:)/g, "")) : undefined;
      if (port === undefined) {
        client.end("HTTP/1.1 403 Forbidden\r\n\r\n");
        return;
      }
      const upstream = connect(port, "127.0.0.1", () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        const rest = head.subarray(end + 4);
        if (rest.length > 0) upstream.write(rest);
        client.pipe(upstream);
        upstream.pipe(client);
      });
      upstream.on("error", () => client.destroy());
      client.on("close", () => upstream.destroy());
    };
    client.on("data", onData);
    client.on("error", () => {});
  });
  server.listen(0, "127.0.0.1");
  return { port: (server.address() as { port: number }).port, stop: () => server.close() };
}

/** A 200 whose body trickles one byte every 5 s and never ends. */
function stalledBody(): Response {
  let timer: ReturnType<typeof setInterval> | undefined;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new Uint8Array([0]));
      timer = setInterval(() => {
        try {
          controller.enqueue(new Uint8Array([0]));
        } catch {
          clearInterval(timer);
        }
      }, 5_000);
    },
    cancel() {
      clearInterval(timer);
    },
  });
  return new Response(body, { headers: { "content-type": "application/octet-stream" } });
}
