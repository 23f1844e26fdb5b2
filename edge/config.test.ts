import { describe, expect, test } from "bun:test";
import { ConfigError } from "../shared/env.ts";
import { loadEdgeConfig } from "./config.ts";

describe("edge configuration", () => {
  test("embedded defaults: local provider, file database under the data dir, port 8787", () => {
    const c = loadEdgeConfig({});
    expect(c.provider).toBe("local");
    expect(c.port).toBe(8787);
    expect(c.databaseUrl).toBe("file:.sam/sam.db");
    expect(c.cloudflare.gatewayBase).toBe("https://gateway.ai.cloudflare.com/v1");
    expect(c.hetzner.apiBase).toBe("https://api.hetzner.cloud/v1");
  });

  test("a Hetzner token selects the hetzner provider unless told otherwise", () => {
    const hetzner = {
      HCLOUD_TOKEN: "t",
      SAM_PUBLIC_URL: "https://sam.example.com",
      SAM_AGENT_DOWNLOAD_URL: "https://downloads.example.com/sam-agent",
      SAM_AGENT_SHA256: "a".repeat(64),
    };
    expect(loadEdgeConfig(hetzner).provider).toBe("hetzner");
    expect(loadEdgeConfig(hetzner).hetznerProvider?.agentDownloadUrl).toBe("https://downloads.example.com/sam-agent");
    expect(loadEdgeConfig({ HCLOUD_TOKEN: "t", SAM_PROVIDER: "local" }).provider).toBe("local");
    expect(loadEdgeConfig({ HCLOUD_TOKEN: "t", SAM_PROVIDER: "local" }).hetznerProvider).toBeNull();
  });

  test.each([
    [{ SAM_PORT: "abc" }, "SAM_PORT: expected an integer from 0 to 65535, got 'abc'"],
    [{ SAM_PORT: "70000" }, "SAM_PORT: expected an integer from 0 to 65535, got '70000'"],
    [{ SAM_PROVIDER: "aws" }, "SAM_PROVIDER: expected one of local, hetzner, got 'aws'"],
    [{ SAM_PROVIDER: "hetzner" }, "SAM_PROVIDER: 'hetzner' needs HCLOUD_TOKEN to be set"],
    [
      { HCLOUD_TOKEN: "t" },
      "SAM_PUBLIC_URL: the hetzner provider needs the edge's public URL, which its VMs call back",
    ],
    [
      { HCLOUD_TOKEN: "t", SAM_PUBLIC_URL: "https://sam.example.com" },
      "SAM_AGENT_DOWNLOAD_URL: the hetzner provider needs",
    ],
    [{ SAM_RATE_LIMIT_RPM: "lots" }, "SAM_RATE_LIMIT_RPM: "],
    [
      { SAM_DATABASE_URL: "postgres://db/sam" },
      "SAM_DATABASE_URL: expected a file:, libsql:, http(s): or ws(s): URL, got 'postgres:'",
    ],
    [{ SAM_AI_GATEWAY: "maybe" }, "SAM_AI_GATEWAY: expected on or off, got 'maybe'"],
    [{ SAM_AI_GATEWAY: "on" }, "SAM_AI_GATEWAY: 'on' needs CF_ACCOUNT_ID and CF_AI_GATEWAY_ID to be set"],
    [{ CF_AI_GATEWAY_ID: "My Gateway" }, "CF_AI_GATEWAY_ID: 1-64 lowercase letters"],
    [{ CF_AI_GATEWAY_ID: "sam--gw" }, "CF_AI_GATEWAY_ID: 1-64 lowercase letters"],
    [{ CF_AI_GATEWAY_ID: "g".repeat(65) }, "CF_AI_GATEWAY_ID: 1-64 lowercase letters"],
    [{ SAM_INFERENCE_URL: "ftp://x" }, "SAM_INFERENCE_URL: expected a http/https URL, got 'ftp:'"],
    [{ SAM_ADMIN_TOKEN: "short" }, "SAM_ADMIN_TOKEN: must be at least 16 characters"],
    [
      { SAM_AGENT_READY_TIMEOUT: "soon" },
      "SAM_AGENT_READY_TIMEOUT: expected a positive duration like 90s, 15m or 1h, got 'soon'",
    ],
  ])("%j stops the start with one line naming the variable", (env, message) => {
    expect(() => loadEdgeConfig(env)).toThrow(ConfigError);
    expect(() => loadEdgeConfig(env)).toThrow(message);
  });
});

describe("the deploy profile", () => {
  const hetzner = {
    HCLOUD_TOKEN: "t",
    SAM_PUBLIC_URL: "https://sam.example.com",
    SAM_AGENT_DOWNLOAD_URL: "https://d.example.com/a",
    SAM_AGENT_SHA256: "c".repeat(64),
    SAM_DATABASE_URL: "libsql://sam.turso.io",
    SAM_ADMIN_TOKEN: "a".repeat(24),
    SAM_SECRET_KEY: "b".repeat(64),
  };

  test("is detected from DENO_DEPLOYMENT_ID, chosen with SAM_PROFILE, and local otherwise", () => {
    expect(loadEdgeConfig({ ...hetzner, DENO_DEPLOYMENT_ID: "abc" }).profile).toBe("deploy");
    expect(loadEdgeConfig({ ...hetzner, SAM_PROFILE: "deploy" }).profile).toBe("deploy");
    expect(loadEdgeConfig({ DENO_DEPLOYMENT_ID: "abc", SAM_PROFILE: "local" }).profile).toBe("local");
    expect(loadEdgeConfig({}).profile).toBe("local");
  });

  test.each([
    [
      "the embedded file: database",
      { SAM_DATABASE_URL: "" },
      /^SAM_DATABASE_URL: the deploy profile needs a shared database/,
    ],
    ["the local provider", { HCLOUD_TOKEN: "" }, /^SAM_PROVIDER: the deploy profile cannot run local nodes/],
    ["no admin token", { SAM_ADMIN_TOKEN: "" }, /^SAM_ADMIN_TOKEN: required under the deploy profile/],
    ["no secret key", { SAM_SECRET_KEY: "" }, /^SAM_SECRET_KEY: required under the deploy profile/],
  ])("refuses %s", (_, env, message) => {
    expect(() => loadEdgeConfig({ ...hetzner, DENO_DEPLOYMENT_ID: "abc", ...env })).toThrow(message);
  });
});
