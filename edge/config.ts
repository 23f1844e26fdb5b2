/**
 * The edge's configuration, read once from an environment map (docs/configuration.md). Every bad value
 * throws a one-line `ConfigError` naming the variable; the Deno entry prints it and exits 2.
 */
import { ConfigError, type Env, envChoice, envFlag, envInt, envString } from "../shared/env.ts";
import { type Retention, retentionFromEnv, type Timeouts, timeoutsFromEnv } from "../shared/timeouts.ts";
import { type InferenceConfig, loadInferenceConfig } from "./inference/config.ts";
import { hetznerOptionsFromEnv } from "./providers/hetzner/config.ts";
import type { HetznerProviderOptions } from "./providers/hetzner/provider.ts";

export const DATABASE_SCHEMES = ["file:", "libsql:", "http:", "https:", "ws:", "wss:"] as const;

/**
 * Where the edge runs. `deploy` (Deno Deploy: detected from DENO_DEPLOYMENT_ID, or chosen with
 * SAM_PROFILE=deploy) has no disk that outlives an instance or is shared between instances, so the edge
 * there writes nothing to disk: it refuses a `file:` database, the local provider and any setting it would
 * otherwise generate into the data dir.
 */
export type Profile = "local" | "deploy";

/** Variables the deploy profile cannot start without, with why; each missing one stops the start with one line. */
export const DEPLOY_REQUIRED: readonly (readonly [name: string, why: string])[] = [
  ["SAM_ADMIN_TOKEN", "the edge cannot keep a generated admin token there (no disk outlives an instance)"],
  // A key generated there would differ between instances and die with one, and every sealed secret with it.
  [
    "SAM_SECRET_KEY",
    "a generated key would not survive the instance, nor be shared by the others (32 bytes, hex or base64)",
  ],
];

export function profileFromEnv(env: Env): Profile {
  return envChoice(env, "SAM_PROFILE", ["local", "deploy"], envString(env, "DENO_DEPLOYMENT_ID") ? "deploy" : "local");
}

/** What the deploy profile refuses, as a ConfigError naming the variable. */
function checkDeployProfile(env: Env, provider: "local" | "hetzner", databaseUrl: string): void {
  for (const [name, why] of DEPLOY_REQUIRED) {
    if (!envString(env, name)) throw new ConfigError(`${name}: required under the deploy profile: ${why}`);
  }
  if (databaseUrl.startsWith("file:")) {
    throw new ConfigError(
      "SAM_DATABASE_URL: the deploy profile needs a shared database (libsql:// for Turso, or http(s)/ws(s) for sqld); a file: database lives on one instance's disk",
    );
  }
  if (provider === "local") {
    throw new ConfigError(
      "SAM_PROVIDER: the deploy profile cannot run local nodes (agent processes beside the edge); set HCLOUD_TOKEN for the hetzner provider",
    );
  }
}

export type EdgeConfig = {
  profile: Profile;
  host: string;
  port: number;
  dataDir: string;
  /** Set when SAM_ADMIN_TOKEN is given; otherwise the edge generates one into the data dir. */
  adminToken: string | null;
  databaseUrl: string;
  databaseToken: string | null;
  /** The URL agents and the coding agents on nodes use to reach this edge. */
  publicUrl: string | null;
  provider: "local" | "hetzner";
  hetzner: { token: string | null; apiBase: string };
  cloudflare: {
    accountId: string | null;
    apiToken: string | null;
    aiGateway: boolean;
    gatewayId: string | null;
    aigToken: string | null;
    apiBase: string;
    gatewayBase: string;
  };
  inference: { url: string | null; key: string | null };
  /** Limits of the `/v1` proxy: rate limit, body size, model allowlist, flush interval. */
  inferenceProxy: InferenceConfig;
  /** Server type, image, agent download… read only when the hetzner provider is selected. */
  hetznerProvider: HetznerProviderOptions | null;
  /** The orphan reaper on the tick (`SAM_ORPHAN_REAPER`): delete, only log what it would delete, or nothing. */
  orphanReaper: "on" | "dry-run" | "off";
  timeouts: Timeouts;
  /** How long finished tasks, their logs, dead nodes and usage are kept (pruned on the tick). */
  retention: Retention;
  /** Most nodes with a server at once (`SAM_MAX_NODES`). */
  maxNodes: number;
  /** Log lines the edge keeps per task (`SAM_TASK_LOG_MAX_LINES`); past it, one marker line. */
  taskLogMaxLines: number;
  /** The local provider's agent: a binary path, or a command and arguments split on spaces (`SAM_AGENT_BINARY`). */
  agentCommand: string[];
  /** `SAM_SECRET_KEY` (32 bytes) sealing the secrets the edge must read back; null: generated into the data dir. */
  secretKey: Uint8Array | null;
  /** `SAM_TRUST_PROXY=1`: the edge sits behind a proxy whose `X-Forwarded-Proto` it may believe. */
  trustProxy: boolean;
  limits: EdgeLimits;
};

/** Limits of the user-facing API beyond `/v1`'s (docs/security.md). */
export type EdgeLimits = {
  /** Task submissions per key per minute when the key has no limit of its own (`SAM_RATE_LIMIT_RPM`). */
  submissionsPerMinute: number;
  /** Other `/api/tasks*` requests per key per minute. */
  readsPerMinute: number;
  /** Concurrent SSE follows of one key, and of the whole instance. */
  followsPerKey: number;
  followsTotal: number;
};

/** A 32-byte key written as 64 hex digits or base64; null when it is neither. */
export function parseSecretKey(text: string): Uint8Array | null {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Uint8Array.from(t.match(/../g)!, (h) => parseInt(h, 16));
  if (!/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) return null;
  const bytes = Uint8Array.from(
    atob(t.replace(/-/g, "+").replace(/_/g, "/").replace(/=?$/, "=")),
    (ch) => ch.charCodeAt(0),
  );
  return bytes.length === 32 ? bytes : null;
}

function envUrl(env: Env, name: string, fallback: string | null, schemes: readonly string[]): string | null {
  const raw = envString(env, name) ?? fallback;
  if (raw === null) return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name}: not a URL: '${raw}'`);
  }
  if (!schemes.includes(url.protocol)) {
    throw new ConfigError(
      `${name}: expected a ${schemes.map((s) => s.slice(0, -1)).join("/")} URL, got '${url.protocol}'`,
    );
  }
  return raw.replace(/\/+$/, "");
}

/** Cloudflare's documented AI Gateway id pattern (at most 64 characters). */
const GATEWAY_ID = /^[a-z0-9_]+(?:-[a-z0-9_]+)*$/;

export function loadEdgeConfig(env: Env): EdgeConfig {
  const profile = profileFromEnv(env);
  const dataDir = envString(env, "SAM_DATA_DIR", ".sam");
  const hetznerToken = envString(env, "HCLOUD_TOKEN") ?? null;
  const provider = envChoice(env, "SAM_PROVIDER", ["local", "hetzner"], hetznerToken ? "hetzner" : "local");
  if (provider === "hetzner" && !hetznerToken) {
    throw new ConfigError("SAM_PROVIDER: 'hetzner' needs HCLOUD_TOKEN to be set");
  }
  if (provider === "hetzner" && !envString(env, "SAM_PUBLIC_URL")) {
    throw new ConfigError("SAM_PUBLIC_URL: the hetzner provider needs the edge's public URL, which its VMs call back");
  }
  const databaseUrl = envString(env, "SAM_DATABASE_URL") ?? `file:${dataDir.replace(/\/+$/, "")}/sam.db`;
  if (!DATABASE_SCHEMES.some((s) => databaseUrl.startsWith(s))) {
    throw new ConfigError(
      `SAM_DATABASE_URL: expected a file:, libsql:, http(s): or ws(s): URL, got '${databaseUrl.split(":")[0]}:'`,
    );
  }
  if (profile === "deploy") checkDeployProfile(env, provider, databaseUrl);
  const aiGateway = envFlag(env, "SAM_AI_GATEWAY", false);
  const accountId = envString(env, "CF_ACCOUNT_ID") ?? null;
  const gatewayId = envString(env, "CF_AI_GATEWAY_ID") ?? null;
  if (aiGateway && (!accountId || !gatewayId)) {
    throw new ConfigError("SAM_AI_GATEWAY: 'on' needs CF_ACCOUNT_ID and CF_AI_GATEWAY_ID to be set");
  }
  if (gatewayId !== null && !(gatewayId.length <= 64 && GATEWAY_ID.test(gatewayId))) {
    throw new ConfigError(
      "CF_AI_GATEWAY_ID: 1-64 lowercase letters, digits and _, in groups joined by single hyphens (Cloudflare's gateway id rule), e.g. 'sam-gateway'",
    );
  }
  const adminToken = envString(env, "SAM_ADMIN_TOKEN") ?? null;
  if (adminToken !== null && adminToken.length < 16) {
    throw new ConfigError("SAM_ADMIN_TOKEN: must be at least 16 characters");
  }
  const rawSecretKey = envString(env, "SAM_SECRET_KEY") ?? null;
  const secretKey = rawSecretKey === null ? null : parseSecretKey(rawSecretKey);
  if (rawSecretKey !== null && secretKey === null) {
    throw new ConfigError(
      "SAM_SECRET_KEY: expected 32 bytes as 64 hex digits or base64 (e.g. `openssl rand -base64 32`)",
    );
  }
  const timeouts = timeoutsFromEnv(env);
  const inferenceProxy = loadInferenceConfig(env);
  const hetznerApiBase = envUrl(env, "SAM_HCLOUD_API_BASE", "https://api.hetzner.cloud/v1", ["http:", "https:"])!;
  return {
    profile,
    host: envString(env, "SAM_HOST", "127.0.0.1"),
    port: envInt(env, "SAM_PORT", 8787, 0, 65535),
    dataDir,
    adminToken,
    databaseUrl,
    databaseToken: envString(env, "SAM_DATABASE_TOKEN") ?? null,
    publicUrl: envUrl(env, "SAM_PUBLIC_URL", null, ["http:", "https:"]),
    provider,
    hetzner: {
      token: hetznerToken,
      apiBase: hetznerApiBase,
    },
    cloudflare: {
      accountId,
      apiToken: envString(env, "CF_API_TOKEN") ?? null,
      aiGateway,
      gatewayId,
      aigToken: envString(env, "CF_AIG_TOKEN") ?? null,
      apiBase: envUrl(env, "SAM_CF_API_BASE", "https://api.cloudflare.com/client/v4", ["http:", "https:"])!,
      gatewayBase: envUrl(env, "SAM_CF_GATEWAY_BASE", "https://gateway.ai.cloudflare.com/v1", ["http:", "https:"])!,
    },
    inference: {
      url: envUrl(env, "SAM_INFERENCE_URL", null, ["http:", "https:"]),
      key: envString(env, "SAM_INFERENCE_KEY") ?? null,
    },
    inferenceProxy,
    hetznerProvider: provider === "hetzner"
      ? hetznerOptionsFromEnv(env, {
        token: hetznerToken!,
        apiBase: hetznerApiBase,
        retryBackoffMs: timeouts.retryBackoff,
        heartbeatMs: timeouts.heartbeat,
      })
      : null,
    // Local nodes are this edge's own processes, stopped on shutdown; only cloud servers can be orphaned.
    orphanReaper: envChoice(env, "SAM_ORPHAN_REAPER", ["on", "dry-run", "off"], provider === "hetzner" ? "on" : "off"),
    timeouts,
    retention: retentionFromEnv(env),
    maxNodes: envInt(env, "SAM_MAX_NODES", 10, 1, 10_000),
    taskLogMaxLines: envInt(env, "SAM_TASK_LOG_MAX_LINES", 10_000, 1, 10_000_000),
    agentCommand: envString(env, "SAM_AGENT_BINARY", "agent/dist/sam-agent").split(/\s+/).filter(Boolean),
    secretKey,
    trustProxy: envFlag(env, "SAM_TRUST_PROXY", false),
    limits: {
      submissionsPerMinute: inferenceProxy.rateLimitPerMinute,
      readsPerMinute: envInt(env, "SAM_API_READ_RPM", 600, 1, 1_000_000),
      followsPerKey: envInt(env, "SAM_SSE_MAX_PER_KEY", 16, 1, 100_000),
      followsTotal: envInt(env, "SAM_SSE_MAX", 256, 1, 1_000_000),
    },
  };
}
