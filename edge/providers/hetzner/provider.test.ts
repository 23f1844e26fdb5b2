// The Hetzner provider over real HTTP against the Hetzner API fake (shaped like Hetzner's description of
// 2026-07): creates with cloud-init and labels, answers rate limits and 5xx with backoff, never leaves a
// failed create behind, deletes idempotently, finds SAM's servers by label across pages — and is configured
// from the env the edge reads (`SAM_PROVIDER=hetzner` + `HCLOUD_TOKEN`).
import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import { parse } from "yaml";
import { loadEdgeConfig } from "../../config.ts";
import { ConfigError } from "../../../shared/env.ts";
import { VM } from "../../../cloud-init/vm-layout.ts";
import type { CreateServerInput, Provider } from "../provider.ts";
import { hetznerOptionsFromEnv } from "./config.ts";
import { type HetznerFake, startHetznerFake } from "../../testing/hetzner-fake.ts";
import { createHetznerProvider, HetznerProviderError, type HetznerProviderOptions } from "./provider.ts";

const TOKEN = "hcloud-test-token";
const fake: HetznerFake = await startHetznerFake({ token: TOKEN, actionPolls: 1, runningPolls: 1 });
afterAll(() => fake.close());
beforeEach(() => fake.reset());

const OPTIONS: HetznerProviderOptions = {
  token: TOKEN,
  apiBase: fake.url,
  serverType: "cx23",
  location: "fsn1",
  image: "docker-ce",
  agentDownloadUrl: "https://downloads.example.com/sam-agent-linux-x64",
  agentSha256: "a".repeat(64),
  baseImage: "mcr.microsoft.com/devcontainers/base:ubuntu",
  requestTimeoutMs: 300,
  pollIntervalMs: 5,
  createDeadlineMs: 5_000,
  retry: { baseMs: 5, maxMs: 50, attempts: 4 },
};

const provider = (extra: Partial<HetznerProviderOptions> = {}): Provider =>
  createHetznerProvider({ ...OPTIONS, ...extra });

function input(nodeId = "nd-1"): CreateServerInput & { agentToken: string } {
  return {
    nodeId,
    nodeToken: `samnode_${"n".repeat(40)}`,
    agentToken: `samagent_${"a".repeat(40)}`,
    controlPlaneUrl: "https://sam.example.com",
    labels: { owner: "key-7" },
  };
}

const posts = () => fake.requests.filter((r) => r.method === "POST" && r.path === "/servers");

describe("create", () => {
  test("creates a labelled docker-ce server booting SAM's cloud-init, and records the provider timings", async () => {
    const { server, timings } = await provider().create(input());
    expect(server).toMatchObject({
      nodeId: "nd-1",
      status: "running",
      labels: { "sam-node": "true", "sam-node-id": "nd-1", owner: "key-7" },
    });
    expect(server.ipv4).toMatch(/^203\.0\.113\.\d+$/);
    expect(fake.servers.has(Number(server.id))).toBe(true);

    const body = posts()[0]!.body as Record<string, unknown>;
    expect(body).toMatchObject({
      name: "sam-nd-1",
      server_type: "cx23",
      location: "fsn1",
      image: "docker-ce",
      start_after_create: true,
    });
    const userData = String(body.user_data);
    expect(userData.startsWith("#cloud-config\n")).toBe(true);
    const files =
      (parse(userData) as { write_files: { path: string; content: string; permissions: string }[] }).write_files;
    const tokens = files.find((f) => f.path === VM.tokenFile)!;
    expect(tokens.permissions).toBe("0600");
    expect(tokens.content).toContain(input().nodeToken);
    expect(files.find((f) => f.path === VM.agentEnv)!.content).toContain("SAM_NODE_ID=nd-1\n");

    expect(timings.map((t) => t.name)).toEqual(["create_call", "create_accepted", "action_done", "server_running"]);
    for (let i = 1; i < timings.length; i++) expect(timings[i]!.at).toBeGreaterThanOrEqual(timings[i - 1]!.at);
  });

  test("an Arm server type boots the arm64 plan", async () => {
    await provider({ serverType: "cax11" }).create(input());
    expect(String((posts()[0]!.body as { user_data: string }).user_data)).toContain("node-v22.11.0-linux-arm64.tar.gz");
  });

  test("answers 5xx — also a proxy's HTML 502 — with backoff", async () => {
    fake.inject("POST", /^\/servers$/, { status: 502 }, 2);
    fake.inject("GET", /^\/actions\/\d+$/, { status: 502, html: true }, 1);
    fake.inject("GET", /^\/servers\/\d+$/, { status: 503 }, 1);
    const { server } = await provider().create(input());
    expect(server.status).toBe("running");
    expect(posts()).toHaveLength(3);
    expect(fake.servers.size).toBe(1);
  });

  test("after a 429 it waits as long as one request takes to come back (RateLimit-Reset is when the budget is full), not the hour", async () => {
    // 36,000 requests an hour refill one every 100 ms; the budget is spent, so every request must wait its turn.
    const limited = await startHetznerFake({ token: TOKEN, rateLimitPerHour: 36_000 });
    try {
      limited.exhaustRateLimit();
      const waits: number[] = [];
      const sleep = (ms: number) => (waits.push(ms), new Promise<void>((r) => setTimeout(r, ms)));
      const { server } = await createHetznerProvider({
        ...OPTIONS,
        apiBase: limited.url,
        sleep,
        retry: { baseMs: 5, maxMs: 30_000, attempts: 4 },
      }).create(input());
      expect(server.status).toBe("running");
      expect(waits[0]).toBeGreaterThanOrEqual(90);
      expect(waits[0]).toBeLessThanOrEqual(150);
      const statuses = limited.requests.map((r) => r.status);
      expect(statuses).toContain(429);
      // Each 429 is followed by a request that got through: the wait came from the headers, not a guess.
      statuses.forEach((st, i) => st === 429 && expect(statuses[i + 1]).not.toBe(429));
    } finally {
      await limited.close();
    }
  });

  test("an IPv6-only server (public_net.ipv4 null) is a server without an IPv4, not a failure", async () => {
    const p = provider();
    const s = fake.addServer({ labels: { "sam-node": "true", "sam-node-id": "v6" }, ipv4: false });
    expect(await p.get(String(s.id))).toMatchObject({ nodeId: "v6", ipv4: null, status: "running" });
  });

  test("a 201 whose server cannot be parsed reports the id first, then deletes that server", async () => {
    fake.applyThenFailNextCreate({ brokenBody: true });
    const recorded: string[] = [];
    const err = await provider().create({ ...input(), onServerCreated: async (id) => void recorded.push(id) }).catch((
      e,
    ) => e);
    expect(err).toBeInstanceOf(HetznerProviderError);
    expect(err.message).toContain("public_net");
    expect(err.serverMayRemain).toBe(false);
    expect(recorded).toHaveLength(1);
    expect(fake.servers.size).toBe(0);
    expect(fake.requests.filter((r) => r.method === "DELETE").map((r) => r.path)).toEqual([`/servers/${recorded[0]}`]);
  });

  test("when the id cannot be recorded, the server is deleted and the create fails", async () => {
    const err = await provider().create({
      ...input(),
      onServerCreated: async () => {
        throw new Error("database is locked");
      },
    }).catch((e) => e);
    expect(err.message).toContain("database is locked");
    expect(fake.servers.size).toBe(0);
  });

  test("a failed create whose server cannot be deleted says so, and is not repeated", async () => {
    fake.failNextCreateAction("resource_unavailable", "no capacity");
    fake.inject("DELETE", /^\/servers\/\d+$/, { status: 503 }, 100);
    const err = await provider().create(input()).catch((e) => e);
    expect(err.serverMayRemain).toBe(true);
    expect(posts()).toHaveLength(1);
    expect(fake.servers.size).toBe(1);
  });

  test("refuses label keys with Hetzner's reserved prefix before calling the API", async () => {
    const err = await provider().create({ ...input(), labels: { "hetzner.cloud/owner": "x" } }).catch((e) => e);
    expect(err.message).toContain("hetzner.cloud/");
    expect(fake.requests).toHaveLength(0);
  });

  test("a create that Hetzner applied but answered with a 5xx or a timeout is adopted, not duplicated", async () => {
    fake.applyThenFailNextCreate({ status: 500 });
    const first = await provider().create(input("nd-a"));
    fake.applyThenFailNextCreate({ delayMs: 1_000 });
    const second = await provider().create(input("nd-b"));
    expect([first.server.nodeId, second.server.nodeId]).toEqual(["nd-a", "nd-b"]);
    expect(fake.servers.size).toBe(2);
    expect(posts()).toHaveLength(2);
  });

  test("a failed create action deletes the server and reports Hetzner's reason", async () => {
    fake.failNextCreateAction("resource_unavailable", "server type cx22 is unavailable in fsn1");
    const err = await provider().create(input()).catch((e) => e);
    expect(err).toBeInstanceOf(HetznerProviderError);
    expect(err.message).toContain("server type cx22 is unavailable in fsn1");
    expect(err.code).toBe("resource_unavailable");
    expect(fake.servers.size).toBe(0);
    expect(fake.requests.some((r) => r.method === "DELETE")).toBe(true);
  });

  test("a server that never reaches running is cleaned up at the deadline", async () => {
    const slow = await startHetznerFake({ token: TOKEN, runningPolls: 1_000_000 });
    try {
      const err = await createHetznerProvider({ ...OPTIONS, apiBase: slow.url, createDeadlineMs: 100 }).create(input())
        .catch((e) => e);
      expect(err).toBeInstanceOf(HetznerProviderError);
      expect(err.code).toBe("create_timeout");
      expect(slow.servers.size).toBe(0);
    } finally {
      await slow.close();
    }
  });

  test("persistent 503s give up after the configured attempts, leaving nothing behind", async () => {
    fake.inject("POST", /^\/servers$/, { status: 503, code: "unavailable", message: "service unavailable" }, 10);
    const err = await provider().create(input()).catch((e) => e);
    expect(err).toBeInstanceOf(HetznerProviderError);
    expect(err.message).toContain("service unavailable");
    expect(posts()).toHaveLength(OPTIONS.retry!.attempts);
    expect(fake.servers.size).toBe(0);
  });

  test("a wrong token is an answer, not retried", async () => {
    const err = await provider({ token: "wrong" }).create(input()).catch((e) => e);
    expect(err.code).toBe("unauthorized");
    expect(err.message).not.toContain("wrong");
    expect(posts()).toHaveLength(1);
  });

  test("refuses a node id Hetzner cannot carry as a label, before calling the API", async () => {
    const err = await provider().create(input("_bad")).catch((e) => e);
    expect(err).toBeInstanceOf(HetznerProviderError);
    expect(err.message).toContain("nodeId");
    const missing = await provider().create({ ...input(), agentToken: "" } as CreateServerInput).catch((e) => e);
    expect(missing.message).toContain("agentToken");
    expect(fake.requests).toHaveLength(0);
  });
});

describe("get, delete, list", () => {
  test("get answers the server, or null when it is gone", async () => {
    const p = provider();
    const { server } = await p.create(input());
    expect(await p.get(server.id)).toMatchObject({ id: server.id, status: "running", nodeId: "nd-1" });
    expect(await p.get("999999")).toBeNull();
    expect(await p.get("not-a-number")).toBeNull();
  });

  test("delete is idempotent and rides out a 5xx", async () => {
    const p = provider();
    const { server } = await p.create(input());
    fake.inject("DELETE", /^\/servers\/\d+$/, { status: 500 }, 1);
    await p.delete(server.id);
    expect(fake.servers.size).toBe(0);
    await p.delete(server.id);
    expect(await p.get(server.id)).toBeNull();
  });

  test("list finds SAM's servers by label across pages, and only those", async () => {
    for (let i = 0; i < 60; i++) {
      fake.addServer({ name: `sam-n${i}`, labels: { "sam-node": "true", "sam-node-id": `n${i}` } });
    }
    fake.addServer({ name: "someone-elses", labels: { team: "web" }, image: "ubuntu-24.04" });
    const all = await provider().list();
    expect(all).toHaveLength(60);
    expect(new Set(all.map((s) => s.nodeId)).size).toBe(60);
    const lists = fake.requests.filter((r) => r.method === "GET" && r.path === "/servers");
    expect(lists.map((r) => r.query.page)).toEqual(["1", "2"]);
    expect(lists.every((r) => r.query.label_selector === "sam-node")).toBe(true);
  });
});

describe("configured from the edge's environment", () => {
  const env = {
    SAM_PROVIDER: "hetzner",
    HCLOUD_TOKEN: TOKEN,
    SAM_HCLOUD_API_BASE: fake.url,
    SAM_AGENT_DOWNLOAD_URL: "https://downloads.example.com/sam-agent-linux-x64",
    SAM_AGENT_SHA256: "b".repeat(64),
    SAM_HCLOUD_REQUEST_TIMEOUT: "2s",
    SAM_PUBLIC_URL: "https://sam.example.com",
  };

  test("SAM_PROVIDER=hetzner with a token creates real-shaped servers", async () => {
    const config = loadEdgeConfig(env);
    expect(config.provider).toBe("hetzner");
    const p = createHetznerProvider({
      ...hetznerOptionsFromEnv(env, {
        token: config.hetzner.token!,
        apiBase: config.hetzner.apiBase,
        retryBackoffMs: 5,
        heartbeatMs: config.timeouts.heartbeat,
      }),
      pollIntervalMs: 5,
    });
    const { server } = await p.create(input("nd-env"));
    expect(server.status).toBe("running");
    expect(posts()[0]!.body).toMatchObject({ server_type: "cx23", location: "fsn1", image: "docker-ce" });
    expect(String((posts()[0]!.body as { user_data: string }).user_data)).toContain("SAM_HEARTBEAT_INTERVAL=30s");
  });

  test("the edge's SAM_GIT_* commit identity reaches the VM's agent env file", async () => {
    const withGit = { ...env, SAM_GIT_AUTHOR_NAME: "SAM Bot", SAM_GIT_AUTHOR_EMAIL: "sam@example.com" };
    const config = loadEdgeConfig(withGit);
    const p = createHetznerProvider({
      ...hetznerOptionsFromEnv(withGit, {
        token: config.hetzner.token!,
        apiBase: config.hetzner.apiBase,
        retryBackoffMs: 5,
        heartbeatMs: 30_000,
      }),
      pollIntervalMs: 5,
    });
    const before = posts().length;
    await p.create(input("nd-git"));
    const userData = String((posts()[before]!.body as { user_data: string }).user_data);
    expect(userData).toContain("SAM_GIT_AUTHOR_NAME=SAM Bot");
    expect(userData).toContain("SAM_GIT_AUTHOR_EMAIL=sam@example.com");
  });

  test("a bad setting names its variable", () => {
    const base = { token: TOKEN, apiBase: fake.url, retryBackoffMs: 5, heartbeatMs: 30_000 };
    const cases: [Record<string, string>, string][] = [
      [{ SAM_AGENT_DOWNLOAD_URL: "" }, "SAM_AGENT_DOWNLOAD_URL"],
      [{ SAM_AGENT_SHA256: "xyz" }, "SAM_AGENT_SHA256"],
      [{ SAM_HCLOUD_SERVER_TYPE: "CX 22" }, "SAM_HCLOUD_SERVER_TYPE"],
      [{ SAM_DEVCONTAINER_IMAGE: "ubuntu;reboot" }, "SAM_DEVCONTAINER_IMAGE"],
      [{ SAM_HCLOUD_SSH_KEYS: "not a key" }, "SAM_HCLOUD_SSH_KEYS"],
      [{ SAM_GIT_AUTHOR_NAME: "x\nSAM_TASK_SANDBOX=off" }, "SAM_GIT_AUTHOR_NAME"],
      [{ SAM_GIT_COMMITTER_EMAIL: "nobody" }, "SAM_GIT_COMMITTER_EMAIL"],
    ];
    for (const [patch, name] of cases) {
      expect(() => hetznerOptionsFromEnv({ ...env, ...patch }, base)).toThrow(ConfigError);
      expect(() => hetznerOptionsFromEnv({ ...env, ...patch }, base)).toThrow(name);
    }
  });
});
