// Upstream reads split at random byte boundaries, through SAM served by Deno.serve over real HTTP: the client
// gets the same events as from the unsplit stream, with `role` on each choice's first delta.
import { createClient } from "@libsql/client";
import { loadEdgeConfig } from "../config.ts";
import { migrate } from "../db/migrate.ts";
import { loadInferenceConfig } from "./config.ts";
import { checkSplitProperty, SplitUpstream } from "../testing/recorded-streams.ts";
import { createInferenceRoutes } from "./routes.ts";
import { INFERENCE_MIGRATIONS } from "./usage.ts";

Deno.test("any split of recorded upstream streams reaches the client as the unsplit stream's events (Deno.serve)", async () => {
  const upstream = new SplitUpstream();
  const upstreamServer = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, upstream.fetch);
  const dir = await Deno.makeTempDir();
  const env = {
    SAM_DATA_DIR: dir,
    SAM_INFERENCE_URL: `http://127.0.0.1:${upstreamServer.addr.port}/v1`,
    SAM_RATE_LIMIT_RPM: "1000000",
  };
  const db = createClient({ url: `file:${dir}/sam.db` });
  await migrate(db, INFERENCE_MIGRATIONS);
  const inference = createInferenceRoutes({
    config: loadEdgeConfig(env),
    inference: loadInferenceConfig(env),
    authenticate: async (t) => t === "sam_k" ? { kind: "key", keyId: "k", name: "n", rateLimitPerMinute: null } : null,
    db,
    log: () => {},
  });
  const sam = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, inference.app.fetch);
  try {
    await checkSplitProperty({ samBase: `http://127.0.0.1:${sam.addr.port}`, key: "sam_k", upstream });
  } finally {
    await sam.shutdown();
    await upstreamServer.shutdown();
    await inference.close();
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
