/**
 * The edge as its own process for the submit benchmark, under Bun or Deno (Deno is the production
 * runtime): `<bun|deno run -A> scripts/bench/edge-server.ts <code root>`. The code root is this tree or
 * an exported baseline, so both are served by the very same entry. Its nodes are local agent doubles
 * (separate processes, holding their tasks). Prints one JSON line `{"url": …}` once it listens; stops on
 * SIGTERM/SIGINT.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { LocalProvider } from "../../edge/providers/local/local.ts";

type Serve = (
  fetch: (req: Request) => Response | Promise<Response>,
  hostname: string,
) => Promise<{ url: string; stop(): Promise<void> }>;

const root = process.argv[2] ?? join(import.meta.dirname!, "..", "..");
const here = join(import.meta.dirname!, "..", "..");
const { loadEdgeConfig } = await import(pathToFileURL(join(root, "edge", "config.ts")).href);
// The composition root was edge/edge.ts before it was named for what it does; a baseline may predate that.
const composition = existsSync(join(root, "edge", "compose.ts")) ? "compose.ts" : "edge.ts";
const { createEdge } = await import(pathToFileURL(join(root, "edge", composition)).href);

const config = loadEdgeConfig(process.env);
const provider = new LocalProvider({
  dataDir: config.dataDir,
  command: [join(here, "node_modules", ".bin", "bun"), join(here, "edge", "testing", "agent-double-main.ts")],
  heartbeatIntervalMs: config.timeouts.heartbeat,
  env: { SAM_MAX_CONCURRENT_TASKS: "1000000", SAM_DOUBLE_MODE: "hold" },
});
const edge = await createEdge(config, { provider, log: () => {} });

const deno = (globalThis as { Deno?: { serve(o: object, h: unknown): { shutdown(): Promise<void> } } }).Deno;
const serve: Serve = deno
  ? (fetch, hostname) =>
    new Promise((resolve) => {
      const server = deno.serve({
        hostname,
        port: 0,
        onListen: ({ port }: { port: number }) =>
          resolve({ url: `http://${hostname}:${port}`, stop: () => server.shutdown() }),
      }, fetch);
    })
  : async (fetch, hostname) => {
    const server = Bun.serve({ hostname, port: 0, fetch, idleTimeout: 0 });
    return { url: `http://${hostname}:${server.port}`, stop: () => server.stop(true) };
  };
const server = await serve(edge.app.fetch, "127.0.0.1");
edge.setPublicUrl(server.url);
console.log(JSON.stringify({ url: server.url, runtime: deno ? "deno" : "bun" }));

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    await server.stop();
    await edge.close();
    process.exit(0);
  });
}
