import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { loadEdgeConfig } from "../config.ts";
import { type CloudflareFake, envelope, gatewayObject, startCloudflareFake } from "../testing/cloudflare-fake.ts";
import { fakeEnv } from "../testing/inference-harness.ts";
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
    expect(fake.requests.map((r) => `${r.method} ${r.path.split("/ai-gateway/")[1]}`)).toEqual([
      "GET gateways/sam-gw",
      "POST gateways",
    ]);
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

  test("a create that fails while another instance creates the gateway: the second lookup finds it", async () => {
    fake.replies.management.push(
      {
        status: 404,
        json: { success: false, errors: [{ code: 7002, message: "Not Found" }], messages: [], result: null },
      },
      envelope(null, 400, [{ code: 7001, message: "Input Validation Error" }]),
    );
    fake.gateways.set("sam-gw", gatewayObject({ id: "sam-gw", rate_limiting_interval: 60, rate_limiting_limit: 300 }));
    expect(await boot()).toBe("gateway");
    expect(fake.requests.map((r) => r.method)).toEqual(["GET", "POST", "GET"]);
    expect(logs.join("\n")).toContain("exists (create answered HTTP 400: Input Validation Error)");
  });

  test("a create refused for another reason, with no gateway behind it, degrades to REST", async () => {
    fake.replies.management.push(
      { status: 404, json: { success: false, errors: [], messages: [], result: null } },
      envelope(null, 400, [{ code: 7001, message: "Input Validation Error: id" }]),
    );
    expect(await boot()).toBe("rest");
    expect(logs.join("\n")).toContain("cannot create AI Gateway 'sam-gw' (HTTP 400: Input Validation Error: id)");
  });

  test("an existing gateway whose rate limit differs from SAM_AI_GATEWAY_RPM is updated with PUT, its other settings kept", async () => {
    fake.gateways.set(
      "sam-gw",
      gatewayObject({
        id: "sam-gw",
        rate_limiting_interval: 60,
        rate_limiting_limit: 50,
        cache_ttl: 120,
        created_at: "2026-01-01T00:00:00Z",
        modified_at: "2026-01-01T00:00:00Z",
      }),
    );
    expect(await boot()).toBe("gateway");
    expect(fake.requests.map((r) => r.method)).toEqual(["GET", "PUT"]);
    const gw = fake.gateways.get("sam-gw")!;
    expect(gw).toMatchObject({
      rate_limiting_limit: 300,
      rate_limiting_interval: 60,
      cache_ttl: 120,
      created_at: "2026-01-01T00:00:00Z",
    });
    expect(gw.modified_at).not.toBe("2026-01-01T00:00:00Z");
    expect(logs.join("\n")).toContain("updated to SAM's settings");
    // Settled: the next start changes nothing.
    fake.requests.length = 0;
    await boot();
    expect(fake.requests.map((r) => r.method)).toEqual(["GET"]);
  });

  test("an open gateway is given authentication when CF_AIG_TOKEN is set", async () => {
    fake.gateways.set("sam-gw", gatewayObject({ id: "sam-gw", rate_limiting_interval: 60, rate_limiting_limit: 300 }));
    expect(await boot({ CF_AIG_TOKEN: "t0ken" })).toBe("gateway");
    expect(fake.gateways.get("sam-gw")!.authentication).toBe(true);
  });

  test("an authenticated gateway (like Cloudflare's default) without CF_AIG_TOKEN: REST, and the log says why", async () => {
    fake.gateways.set(
      "sam-gw",
      gatewayObject({ id: "sam-gw", authentication: true, rate_limiting_interval: 60, rate_limiting_limit: 300 }),
    );
    expect(await boot()).toBe("rest");
    expect(fake.gateways.get("sam-gw")!.authentication).toBe(true);
    expect(logs.join("\n")).toContain(
      "requires authentication (cf-aig-authorization) and CF_AIG_TOKEN is not set; inference uses rest",
    );
  });

  test("the fake validates create bodies as the schema does", async () => {
    const post = (body: unknown) =>
      fetch(`${fake.apiBase}/accounts/${fake.accountId}/ai-gateway/gateways`, {
        method: "POST",
        headers: { authorization: `Bearer ${fake.apiToken}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const good = {
      id: "ok-gw",
      cache_invalidate_on_update: false,
      cache_ttl: 0,
      collect_logs: true,
      rate_limiting_interval: 0,
      rate_limiting_limit: 0,
      rate_limiting_technique: "fixed",
    };
    for (const bad of [{ ...good, id: "Bad Id" }, { ...good, rate_limiting_technique: "leaky" }, { id: "x" }]) {
      const res = await post(bad);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ success: false, errors: [{ code: 7001 }], messages: [], result: null });
    }
    const created = await (await post(good)).json();
    expect(created.result).toMatchObject({
      id: "ok-gw",
      created_at: expect.any(String),
      modified_at: expect.any(String),
    });
  });

  test("a failing Cloudflare API degrades to REST and says why, without throwing", async () => {
    fake.replies.management.push(envelope(null, 500, [{ code: 10002, message: "internal error" }]));
    expect(await boot()).toBe("rest");
    expect(logs.join("\n")).toContain("HTTP 500: internal error");
  });

  test("a refused token on create degrades to REST", async () => {
    fake.replies.management.push(
      { status: 404, json: { success: false, errors: [] } },
      envelope(null, 403, [{ code: 10000, message: "Authentication error" }]),
      envelope(null, 403, [{ code: 10000, message: "Authentication error" }]),
    );
    expect(await boot()).toBe("rest");
    expect(logs.join("\n")).toContain("cannot create AI Gateway 'sam-gw' (HTTP 403: Authentication error)");
  });

  test("an unreachable Cloudflare API degrades to REST", async () => {
    const mode = await bootstrapGateway(config({ SAM_CF_API_BASE: "http://127.0.0.1:1/client/v4" }), {
      log: (l) => logs.push(l),
    });
    expect(mode).toBe("rest");
    expect(logs.join("\n")).toContain("cannot reach the Cloudflare API");
  });

  test("with the flag off nothing is called; without CF_API_TOKEN the gateway cannot be used", async () => {
    expect(await bootstrapGateway(loadEdgeConfig(fakeEnv(fake)))).toBe("rest");
    expect(await bootstrapGateway(loadEdgeConfig({}))).toBe("none");
    expect(
      await bootstrapGateway(
        loadEdgeConfig({
          SAM_AI_GATEWAY: "on",
          CF_ACCOUNT_ID: "a",
          CF_AI_GATEWAY_ID: "g",
          SAM_INFERENCE_URL: "http://127.0.0.1:9/v1",
        }),
        { log: (l) => logs.push(l) },
      ),
    )
      .toBe("openai-compatible");
    expect(logs.join("\n")).toContain("CF_API_TOKEN is not set");
    expect(fake.requests).toEqual([]);
  });
});
