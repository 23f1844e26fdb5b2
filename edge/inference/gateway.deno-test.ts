// AI Gateway under Deno.serve, against the Cloudflare fake (served by Deno too): an authenticated gateway SAM
// has no token for falls back to REST and says why; the gateway's cf-aig-* headers reach the client; an
// error whose `error` is an array keeps its message.
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { loadEdgeConfig } from "../config.ts";
import { migrate } from "../db/migrate.ts";
import { loadInferenceConfig } from "./config.ts";
import { gatewayObject, type ServeLoopback, startCloudflareFake } from "../testing/cloudflare-fake.ts";
import { bootstrapGateway } from "./gateway.ts";
import { createInferenceRoutes } from "./routes.ts";
import { INFERENCE_MIGRATIONS } from "./usage.ts";

const denoServe: ServeLoopback = (fetch) => {
  const s = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, fetch);
  return { port: s.addr.port, stop: () => s.shutdown() };
};

async function withGateway(
  extraEnv: Record<string, string>,
  run: (
    t: {
      base: string;
      logs: string[];
      fake: ReturnType<typeof startCloudflareFake>;
      mode: string;
      setMode(m: "gateway"): void;
    },
  ) => Promise<void>,
  seed?: (fake: ReturnType<typeof startCloudflareFake>) => void,
) {
  const fake = startCloudflareFake({ serve: denoServe });
  seed?.(fake);
  const dir = await Deno.makeTempDir();
  const env = {
    SAM_DATA_DIR: dir,
    CF_ACCOUNT_ID: fake.accountId,
    CF_API_TOKEN: fake.apiToken,
    SAM_CF_API_BASE: fake.apiBase,
    SAM_CF_GATEWAY_BASE: fake.gatewayBase,
    SAM_AI_GATEWAY: "on",
    CF_AI_GATEWAY_ID: "sam-gw",
    ...extraEnv,
  };
  const logs: string[] = [];
  const config = loadEdgeConfig(env);
  const db = createClient({ url: `file:${dir}/sam.db` });
  await migrate(db, INFERENCE_MIGRATIONS);
  const inference = createInferenceRoutes({
    config,
    inference: loadInferenceConfig(env),
    authenticate: async (t) => t === "sam_k" ? { kind: "key", keyId: "k", name: "n", rateLimitPerMinute: null } : null,
    db,
    log: (l) => logs.push(l),
  });
  const mode = await bootstrapGateway(config, { log: (l) => logs.push(l), gatewayRateLimitPerMinute: 600 });
  inference.setUpstreamMode(mode);
  const sam = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, inference.app.fetch);
  try {
    await run({
      base: `http://127.0.0.1:${sam.addr.port}`,
      logs,
      fake,
      mode,
      setMode: (m) => inference.setUpstreamMode(m),
    });
  } finally {
    await sam.shutdown();
    await inference.close();
    db.close();
    await fake.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const chat = (base: string, stream = false) =>
  fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer sam_k" },
    body: JSON.stringify({
      model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
      stream,
      messages: [{ role: "user", content: "hi" }],
    }),
  });

Deno.test("an authenticated gateway without CF_AIG_TOKEN: REST at start, and a gateway 401 later falls back to REST with the reason", async () => {
  await withGateway(
    {},
    async ({ base, logs, fake, mode, setMode }) => {
      assert.equal(mode, "rest");
      assert.match(
        logs.join("\n"),
        /requires authentication \(cf-aig-authorization\) and CF_AIG_TOKEN is not set; inference uses rest/,
      );
      // As if authentication were switched on after SAM started with the gateway.
      setMode("gateway");
      const res = await chat(base);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-sam-upstream"), "rest");
      assert.match(res.headers.get("x-sam-upstream-fallback") ?? "", /^gateway: HTTP 401 Unauthorized/);
      assert.match(logs.join("\n"), /the gateway refused SAM \(HTTP 401: Unauthorized\); check CF_AIG_TOKEN/);
      assert.deepEqual(fake.requests.filter((r) => r.endpoint !== "management").map((r) => r.endpoint), [
        "gateway",
        "rest",
      ]);
      await res.body?.cancel();
    },
    (fake) =>
      fake.gateways.set(
        "sam-gw",
        gatewayObject({ id: "sam-gw", authentication: true, rate_limiting_interval: 60, rate_limiting_limit: 600 }),
      ),
  );
});

Deno.test("the gateway's cf-aig-* headers reach the client, streaming and not; an array error keeps its message", async () => {
  await withGateway({ CF_AIG_TOKEN: "aig-token-fake" }, async ({ base, fake, mode }) => {
    assert.equal(mode, "gateway");
    for (const stream of [false, true]) {
      const res = await chat(base, stream);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-sam-upstream"), "gateway");
      assert.match(res.headers.get("cf-aig-log-id") ?? "", /^01J/);
      assert.equal(res.headers.get("cf-aig-cache-status"), "MISS");
      await res.text();
    }
    fake.replies.gateway.push({
      status: 400,
      json: {
        success: false,
        result: [],
        messages: [],
        error: [{ code: 2005, message: "Failed to parse the request body" }],
      },
    });
    const bad = await chat(base);
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error.message, /Failed to parse the request body/);
    assert.match(bad.headers.get("cf-aig-log-id") ?? "", /^01J/);
  });
});

Deno.test("POST /v1/embeddings under Deno: the openai client gets bge vectors through the gateway", async () => {
  const { default: OpenAI } = await import("openai");
  await withGateway({ CF_AIG_TOKEN: "aig-token-fake" }, async ({ base, fake }) => {
    const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: "sam_k", maxRetries: 0 });
    const res = await openai.embeddings.create({ model: "@cf/baai/bge-base-en-v1.5", input: ["a", "b"] })
      .withResponse();
    assert.equal(res.response.headers.get("x-sam-upstream"), "gateway");
    assert.deepEqual(res.data.data.map((d) => d.embedding.length), [768, 768]);
    assert.ok(res.data.usage.prompt_tokens > 0);
    assert.equal(
      fake.requests.filter((r) => r.endpoint === "gateway").at(-1)!.path,
      `/v1/${fake.accountId}/sam-gw/workers-ai/v1/embeddings`,
    );
  });
});
