// The inference routes as the composed edge serves them: keys from /api/keys authenticate /v1, usage
// lands in the edge's own database, and an edge with no upstream answers 503 naming what to set.
import { afterAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { startTestEdge } from "../testing/test-edge.ts";
import { chatCompletion, startCloudflareFake } from "../testing/cloudflare-fake.ts";

const cf = startCloudflareFake();
const withUpstream = await startTestEdge({
  env: {
    CF_ACCOUNT_ID: cf.accountId,
    CF_API_TOKEN: cf.apiToken,
    SAM_CF_API_BASE: cf.apiBase,
    SAM_USAGE_FLUSH_INTERVAL: "100ms",
  },
});
const bare = await startTestEdge();
afterAll(async () => {
  await withUpstream.stop();
  await bare.stop();
  await cf.close();
});

describe("inference in the composed edge", () => {
  test("an API key created through /api/keys calls /v1 with the openai client; usage is recorded", async () => {
    const key = await withUpstream.createKey("inference-user");
    cf.replies.rest.push({ json: chatCompletion({ content: "hello from the fake" }) });
    const client = new OpenAI({ baseURL: `${withUpstream.url}/v1`, apiKey: key.key, maxRetries: 0 });
    const res = await client.chat.completions.create({
      model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(res.choices[0]!.message.content).toBe("hello from the fake");
    expect(cf.requests.at(-1)).toMatchObject({ endpoint: "rest", headers: { authorization: `Bearer ${cf.apiToken}` } });
    const config = await (await withUpstream.call("GET", "/api/config")).json();
    expect(config.inference.upstream).toBe("rest");
    const usage = await (async () => {
      const deadline = Date.now() + 5_000;
      while (Date.now() < deadline) {
        const body = await (await withUpstream.call("GET", "/api/usage", { token: key.key })).json();
        if (body.totals.requests >= 1) return body;
        await Bun.sleep(50);
      }
      throw new Error("usage was not recorded");
    })();
    expect(usage).toMatchObject({ key: key.id, totals: { requests: 1, promptTokens: 11, completionTokens: 7 } });
  }, 20_000);

  test("the admin token is not a user on /v1, and no upstream is a 503 naming the variables", async () => {
    const admin = await bare.call("GET", "/v1/models");
    expect(admin.status).toBe(403);
    const key = await bare.createKey("no-upstream");
    const client = new OpenAI({ baseURL: `${bare.url}/v1`, apiKey: key.key, maxRetries: 0 });
    const err = await client.chat.completions
      .create({ model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast", messages: [{ role: "user", content: "hi" }] })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.status).toBe(503);
    expect(err.message).toMatch(/CF_ACCOUNT_ID/);
  }, 20_000);
});
