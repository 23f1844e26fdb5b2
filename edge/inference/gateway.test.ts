import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { loadEdgeConfig } from "../config.ts";
import { envelope, startCloudflareFake, type CloudflareFake } from "./fake/cloudflare.ts";
import { fakeEnv } from "./fake/harness.ts";
import { bootstrapGateway } from "./gateway.ts";

let fake: CloudflareFake;
let logs: string[];
beforeAll(() => {
  fake = startCloudflareFake();
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.gateways.clear();
  fake.requests.length = 0;
  fake.replies.management.length = 0;
  logs = [];
});

const config = (extra: Record<string, string> = {}) =>
  loadEdgeConfig(fakeEnv(fake, { SAM_AI_GATEWAY: "on", CF_AI_GATEWAY_ID: "sam-gw", ...extra }));
const boot = (extra: Record<string, string> = {}) =>
  bootstrapGateway(config(extra), { log: (l) => logs.push(l), gatewayRateLimitPerMinute: 300 });

describe("gateway bootstrap", () => {
  test("creates a missing gateway with SAM's settings, authenticated when CF_AIG_TOKEN is set", async () => {
    expect(await boot({ CF_AIG_TOKEN: "t0ken" })).toBe("gateway");
    expect(fake.gateways.get("sam-gw")).toMatchObject({
      collect_logs: true,
      rate_limiting_limit: 300,
      rate_limiting_interval: 60,
      rate_limiting_technique: "sliding",
      authentication: true,
    });
    expect(fake.requests.map((r) => `${r.method} ${r.path.split("/ai-gateway/")[1]}`)).toEqual(["GET gateways/sam-gw", "POST gateways"]);
    expect(logs.join("\n")).toContain("created");
  });

  test("finds an existing gateway without creating it", async () => {
    await boot();
    fake.requests.length = 0;
    expect(await boot()).toBe("gateway");
    expect(fake.requests.map((r) => r.method)).toEqual(["GET"]);
  });

  test("many instances starting together end with one gateway and all use it", async () => {
    const modes = await Promise.all(Array.from({ length: 6 }, () => boot()));
    expect(modes).toEqual(Array(6).fill("gateway"));
    expect(fake.gateways.size).toBe(1);
  });

  test("a 409 from create counts as success", async () => {
    fake.replies.management.push({ status: 404, json: { success: false, errors: [{ code: 7002, message: "Not Found" }] } }, envelope(null, 409, [{ code: 7004, message: "conflict" }]));
    expect(await boot()).toBe("gateway");
  });

  test("a failing Cloudflare API degrades to REST and says why, without throwing", async () => {
    fake.replies.management.push(envelope(null, 500, [{ code: 10002, message: "internal error" }]));
    expect(await boot()).toBe("rest");
    expect(logs.join("\n")).toContain("HTTP 500: internal error");
  });

  test("a refused token on create degrades to REST", async () => {
    fake.replies.management.push({ status: 404, json: { success: false, errors: [] } }, envelope(null, 403, [{ code: 10000, message: "Authentication error" }]));
    expect(await boot()).toBe("rest");
    expect(logs.join("\n")).toContain("cannot create AI Gateway 'sam-gw' (HTTP 403: Authentication error)");
  });

  test("an unreachable Cloudflare API degrades to REST", async () => {
    const mode = await bootstrapGateway(config({ SAM_CF_API_BASE: "http://127.0.0.1:1/client/v4" }), { log: (l) => logs.push(l) });
    expect(mode).toBe("rest");
    expect(logs.join("\n")).toContain("cannot reach the Cloudflare API");
  });

  test("with the flag off nothing is called; without CF_API_TOKEN the gateway cannot be used", async () => {
    expect(await bootstrapGateway(loadEdgeConfig(fakeEnv(fake)))).toBe("rest");
    expect(await bootstrapGateway(loadEdgeConfig({}))).toBe("none");
    expect(await bootstrapGateway(loadEdgeConfig({ SAM_AI_GATEWAY: "on", CF_ACCOUNT_ID: "a", CF_AI_GATEWAY_ID: "g", SAM_INFERENCE_URL: "http://127.0.0.1:9/v1" }), { log: (l) => logs.push(l) }))
      .toBe("openai-compatible");
    expect(logs.join("\n")).toContain("CF_API_TOKEN is not set");
    expect(fake.requests).toEqual([]);
  });
});
