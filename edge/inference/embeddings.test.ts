// POST /v1/embeddings through SAM over HTTP with the openai client: Workers AI's bge models on REST and
// through the gateway, the client's base64 default encoded by SAM, usage counted, the same limits as chat.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { type CloudflareFake, gatewayObject, startCloudflareFake } from "../testing/cloudflare-fake.ts";
import { fakeEnv, type Served, serveInference, TOKENS } from "../testing/inference-harness.ts";

const MODEL = "@cf/baai/bge-small-en-v1.5";
let fake: CloudflareFake;
let rest: Served;
let gateway: Served;
const client = (s: Served, token: string = TOKENS.alice) =>
  new OpenAI({ baseURL: s.baseURL, apiKey: token, maxRetries: 0 });

beforeAll(async () => {
  fake = startCloudflareFake();
  fake.gateways.set("sam-gw", gatewayObject({ id: "sam-gw", authentication: true }));
  rest = await serveInference(fakeEnv(fake, { SAM_USAGE_FLUSH_INTERVAL: "1h" }));
  gateway = await serveInference(
    fakeEnv(fake, { SAM_AI_GATEWAY: "on", CF_AI_GATEWAY_ID: "sam-gw", CF_AIG_TOKEN: fake.gatewayToken }),
  );
});
afterAll(async () => {
  await rest.close();
  await gateway.close();
  await fake.close();
});
beforeEach(() => {
  fake.requests.length = 0;
});

describe("POST /v1/embeddings", () => {
  test("the openai client gets float vectors (its base64 default encoded by SAM), one per input, with usage", async () => {
    const res = await client(rest).embeddings.create({ model: MODEL, input: ["hello", "world!"] }).withResponse();
    expect(res.response.headers.get("x-sam-upstream")).toBe("rest");
    expect(res.data.data).toHaveLength(2);
    expect(res.data.data[1]!.index).toBe(1);
    const vector = Array.from(res.data.data[0]!.embedding);
    expect(vector).toHaveLength(384);
    // The fake's deterministic values, exactly (float32 round-trips through base64).
    expect(vector.slice(0, 3)).toEqual([0, 1, 2].map((i) => Math.fround(((7 * 31 + i) % 97) / 97 - 0.5)));
    expect(res.data.usage.prompt_tokens).toBeGreaterThan(0);
    const sent = fake.requests.find((r) => r.endpoint === "rest")!;
    expect(sent.path).toBe(`/client/v4/accounts/${fake.accountId}/ai/v1/embeddings`);
    expect(sent.body).toEqual({ model: MODEL, input: ["hello", "world!"] });
  });

  test("encoding_format float passes through as floats; base64 comes back as OpenAI's little-endian float32", async () => {
    const floats = await client(rest).embeddings.create({ model: MODEL, input: "hi", encoding_format: "float" });
    expect(Array.isArray(floats.data[0]!.embedding)).toBe(true);
    const raw = await fetch(`${rest.baseURL}/embeddings`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKENS.alice}`, "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, input: "hi", encoding_format: "base64" }),
    });
    const b64 = (await raw.json()).data[0].embedding as string;
    const decoded = Array.from(new Float32Array(Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0)).buffer));
    expect(decoded).toEqual(floats.data[0]!.embedding);
  });

  test("through the gateway, with the gateway's credentials", async () => {
    const res = await client(gateway).embeddings.create({ model: "@cf/baai/bge-m3", input: "hi" }).withResponse();
    expect(res.response.headers.get("x-sam-upstream")).toBe("gateway");
    expect(res.data.data[0]!.embedding).toHaveLength(1024);
    const sent = fake.requests.find((r) => r.endpoint === "gateway")!;
    expect(sent.path).toBe(`/v1/${fake.accountId}/sam-gw/workers-ai/v1/embeddings`);
    expect(sent.headers["cf-aig-authorization"]).toBe(`Bearer ${fake.gatewayToken}`);
  });

  test("a chat model, an empty input and a missing key are the client's errors, and nothing reaches upstream", async () => {
    const notEmbedding = await client(rest).embeddings.create({
      model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
      input: "hi",
    }).catch((e) => e);
    expect(notEmbedding.status).toBe(404);
    const empty = await client(rest).embeddings.create({ model: MODEL, input: [] }).catch((e) => e);
    expect(empty.status).toBe(400);
    const anonymous = await fetch(`${rest.baseURL}/embeddings`, { method: "POST", body: "{}" });
    expect(anonymous.status).toBe(401);
    expect(fake.requests.filter((r) => r.endpoint === "rest")).toEqual([]);
  });

  test("the key's rate limit counts embeddings with chat", async () => {
    const bob = client(rest, TOKENS.bob);
    await bob.embeddings.create({ model: MODEL, input: "1" });
    await bob.chat.completions.create({
      model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
      messages: [{ role: "user", content: "2" }],
    });
    const third = await bob.embeddings.create({ model: MODEL, input: "3" }).catch((e) => e);
    expect(third.status).toBe(429);
  });

  test("usage is recorded with the upstream's prompt tokens", async () => {
    await rest.inference.usage.flush();
    const before = await rest.db.execute({
      sql: "SELECT COALESCE(SUM(prompt_tokens), 0) AS p FROM inference_usage WHERE model = ?",
      args: [MODEL],
    });
    await client(rest).embeddings.create({ model: MODEL, input: "x".repeat(40) });
    await rest.inference.usage.flush();
    const after = await rest.db.execute({
      sql: "SELECT SUM(prompt_tokens) AS p, SUM(completion_tokens) AS c FROM inference_usage WHERE model = ?",
      args: [MODEL],
    });
    expect(Number(after.rows[0]!.p) - Number(before.rows[0]!.p)).toBe(Math.ceil(42 / 4));
    expect(Number(after.rows[0]!.c)).toBe(0);
  });

  test("GET /v1/models lists the embedding models with their dimensions", async () => {
    const list = await client(rest).models.list();
    expect(list.data.find((m) => m.id === MODEL)).toMatchObject({
      capabilities: { tools: false, embeddings: true, dimensions: 384 },
    });
  });
});
