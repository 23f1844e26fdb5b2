/**
 * Test support: a real sqld behind an HTTP proxy that records every pipeline request (its baton, its request
 * types, its body, its Authorization, the Accept-Encoding it asked for and the Content-Encoding it got) and can
 * misbehave as the server and the network do: answer as sqld does for an expired stream or a baton it does not
 * know, or drop the connection after the server ran the request. node:http on both sides, so the answer's bytes pass untouched
 * (no fetch to inflate them) under Bun and Deno alike.
 */
import { createServer, request } from "node:http";
import type { Socket } from "node:net";
import { startSqld } from "./sqld.ts";

export type SeenRequest = {
  baton: string | null;
  /** The pipeline's request types, e.g. ["store_sql", "batch"] or ["execute", "close"]. */
  kinds: string[];
  body: string;
  accept: string;
  encoding: string;
  authorization: string;
};

export type SqldFault = "expired" | "invalid-baton" | "drop-after-run";

export type ProxiedSqld = {
  url: string;
  seen: SeenRequest[];
  /** Misbehave once, on the next pipeline request that carries a baton (or, for a drop, on the next one). */
  fail(fault: SqldFault): void;
  stop(): Promise<void>;
};

export async function startProxiedSqld(): Promise<ProxiedSqld> {
  const sqld = await startSqld();
  const upstream = new URL(sqld.url);
  const seen: SeenRequest[] = [];
  let fault: SqldFault | null = null;
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const text = body.toString();
      const pipeline = req.url?.includes("pipeline") ?? false;
      let entry: SeenRequest | null = null;
      if (pipeline) {
        const parsed = JSON.parse(text) as { baton?: string | null; requests: { type: string }[] };
        entry = {
          baton: parsed.baton ?? null,
          kinds: parsed.requests.map((r) => r.type),
          body: text,
          accept: String(req.headers["accept-encoding"] ?? ""),
          encoding: "",
          authorization: String(req.headers.authorization ?? ""),
        };
        seen.push(entry);
        // sqld's own answers, byte for byte, to a request on a stream it no longer has.
        if (fault === "expired" && entry.baton) {
          fault = null;
          res.writeHead(400, { "content-type": "application/json" });
          res.end(JSON.stringify({ message: "The stream has expired due to inactivity", code: "STREAM_EXPIRED" }));
          return;
        }
        if (fault === "invalid-baton" && entry.baton) {
          fault = null;
          res.writeHead(400, { "content-type": "text/plain" });
          res.end("Received an invalid baton");
          return;
        }
      }
      const out = request({
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream.host },
      }, (answer) => {
        if (entry) entry.encoding = String(answer.headers["content-encoding"] ?? "");
        if (fault === "drop-after-run" && pipeline) {
          // The server ran it; its answer never arrives.
          fault = null;
          answer.resume();
          req.socket.destroy();
          return;
        }
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      });
      out.end(body);
    });
  });
  server.on("connection", (s: Socket) => (sockets.add(s), s.on("close", () => sockets.delete(s))));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    fail(next) {
      fault = next;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      server.close();
      await sqld.stop();
    },
  };
}
