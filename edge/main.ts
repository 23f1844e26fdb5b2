/**
 * Deno entry of the edge, and the entrypoint on Deno Deploy (docs/deploy.md). The only file that touches
 * `Deno.*`: it reads the environment, serves the app, passes Deno's TLS pinning into it, drives the safety-net
 * tick (`Deno.cron` under the deploy profile, an interval locally) and shuts down cleanly on SIGINT/SIGTERM.
 */
import { ConfigError } from "../shared/env.ts";
import { loadEdgeConfig } from "./config.ts";
import { createEdge, type Edge } from "./compose.ts";
import { denoPinnedTls } from "./nodes/pinned-fetch.ts";

let cronTick: (() => Promise<void>) | null = null;

// Deploy discovers crons by evaluating the module's top level at deployment time: one registered inside a
// conditional, a handler or after Deno.serve is never picked up. So it is registered here, always; the
// handler does nothing until the edge exists, and nothing under the local profile (the interval ticks there).
Deno.cron("sam-tick", "* * * * *", async () => {
  await cronTick?.();
});

function loadConfigOrExit() {
  try {
    return loadEdgeConfig(Deno.env.toObject());
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`sam: configuration error: ${err.message}`);
    Deno.exit(2);
  }
}

async function createEdgeOrExit(): Promise<Edge> {
  try {
    return await createEdge(config, { pinnedTls: denoPinnedTls(Deno.createHttpClient) });
  } catch (err) {
    // One line an operator can act on (e.g. a read-only data dir); the stack goes nowhere useful.
    console.error(`sam: cannot start: ${(err as Error).message}`);
    Deno.exit(1);
  }
}

const config = loadConfigOrExit();
const edge = await createEdgeOrExit();
const onDeploy = config.profile === "deploy";
if (onDeploy) cronTick = edge.tick;

async function serveOrExit(handler: Deno.ServeHandler, options: Deno.ServeTcpOptions): Promise<Deno.HttpServer> {
  try {
    return Deno.serve(options, handler);
  } catch (err) {
    // A port in use or a bad address: one line naming it, not Deno's stack trace.
    const why = err instanceof Deno.errors.AddrInUse ? "the address is already in use" : (err as Error).message;
    console.error(`sam: cannot listen on ${config.host}:${config.port}: ${why} (set SAM_PORT or SAM_HOST)`);
    await edge.close().catch(() => {});
    Deno.exit(1);
  }
}

const server = await serveOrExit(edge.app.fetch, {
  hostname: config.host,
  port: config.port,
  onListen({ hostname, port }) {
    const url = `http://${hostname}:${port}`;
    edge.setPublicUrl(url);
    console.log(`SAM edge listening on ${url}${onDeploy ? " (deploy profile)" : ""}`);
    console.log(`admin pages: ${url}/admin`);
    if (edge.admin.source === "env") console.log("admin token: from SAM_ADMIN_TOKEN");
    else console.log(`admin token: ${edge.admin.token}  (kept in ${edge.admin.path})`);
    if (edge.secretKey.source === "generated") {
      console.log(`secret key: generated into ${edge.secretKey.path} (back it up, or set SAM_SECRET_KEY)`);
    }
  },
});

let ticking = false;
const interval = onDeploy ? null : setInterval(async () => {
  if (ticking) return;
  ticking = true;
  try {
    await edge.tick();
  } catch (err) {
    console.error("sam: tick failed:", (err as Error).message);
  } finally {
    ticking = false;
  }
}, config.timeouts.tick);

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  console.log(`SAM edge: ${signal}, shutting down`);
  if (interval !== null) clearInterval(interval);
  await server.shutdown();
  await edge.close();
  Deno.exit(0);
}
Deno.addSignalListener("SIGINT", () => void shutdown("SIGINT"));
Deno.addSignalListener("SIGTERM", () => void shutdown("SIGTERM"));
