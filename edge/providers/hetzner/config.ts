/**
 * The Hetzner provider's settings from the environment (README § Running on Hetzner). Like the rest of the
 * edge's configuration, a bad value is a one-line `ConfigError` naming the variable.
 */
import * as v from "valibot";
import { CloudInitInput, GitEmail, GitName, ImageRef, SshPublicKey } from "../../../cloud-init/inputs.ts";
import { ConfigError, type Env, envDuration, envInt, envParse, envString } from "../../../shared/env.ts";
import type { HetznerProviderOptions } from "./provider.ts";
import { REQUEST_TIMEOUTS } from "../../../shared/timeouts.ts";

const Name = v.pipe(
  v.string(),
  v.regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "expected a Hetzner name like cx23, fsn1 or docker-ce"),
);

/**
 * Checked against Hetzner's documentation on 2026-12-02 (docs/hetzner.md § Defaults): `cx22` was deprecated
 * on 2025-10-16 and cannot be ordered since 2026-01-01; `cx23` is its successor at the same size.
 */
export const HETZNER_DEFAULTS = {
  serverType: "cx23",
  location: "fsn1",
  image: "docker-ce",
  baseImage: "mcr.microsoft.com/devcontainers/base:ubuntu",
} as const;

/** The commit identity VMs' agents deliver with: the same `SAM_GIT_*` settings a local agent reads. */
function gitIdentityFromEnv(env: Env): HetznerProviderOptions["gitIdentity"] {
  const get = (name: string, schema: v.GenericSchema<string, string>) => {
    const value = envString(env, name);
    return value === undefined ? undefined : envParse(name, schema, value);
  };
  const identity = {
    authorName: get("SAM_GIT_AUTHOR_NAME", GitName),
    authorEmail: get("SAM_GIT_AUTHOR_EMAIL", GitEmail),
    committerName: get("SAM_GIT_COMMITTER_NAME", GitName),
    committerEmail: get("SAM_GIT_COMMITTER_EMAIL", GitEmail),
  };
  return Object.values(identity).some((x) => x !== undefined) ? identity : undefined;
}

/** A URL setting the renderer will accept, checked at start rather than at the first node create. */
function optionalUrl(env: Env, name: string, schema: v.GenericSchema<string, string>): string | undefined {
  const value = envString(env, name);
  return value === undefined ? undefined : envParse(name, schema, value);
}

/**
 * `token` and `apiBase` come from the edge's own config (`HCLOUD_TOKEN`, `SAM_HCLOUD_API_BASE`); the rest
 * from `SAM_HCLOUD_*`, `SAM_AGENT_DOWNLOAD_URL`/`SAM_AGENT_SHA256` and `SAM_DEVCONTAINER_IMAGE`.
 */
export function hetznerOptionsFromEnv(
  env: Env,
  base: { token: string; apiBase: string; retryBackoffMs: number; heartbeatMs: number },
): HetznerProviderOptions {
  const agentDownloadUrl = envString(env, "SAM_AGENT_DOWNLOAD_URL");
  const agentSha256 = envString(env, "SAM_AGENT_SHA256");
  if (!agentDownloadUrl || !agentSha256) {
    throw new ConfigError(
      "SAM_AGENT_DOWNLOAD_URL: the hetzner provider needs SAM_AGENT_DOWNLOAD_URL and SAM_AGENT_SHA256 (where VMs fetch the agent binary, and its sha256)",
    );
  }
  if (!/^https?:\/\//.test(agentDownloadUrl)) {
    throw new ConfigError(`SAM_AGENT_DOWNLOAD_URL: expected an http(s) URL, got '${agentDownloadUrl}'`);
  }
  if (!/^[a-f0-9]{64}$/.test(agentSha256)) throw new ConfigError("SAM_AGENT_SHA256: expected 64 lower-case hex digits");
  const keys = (envString(env, "SAM_HCLOUD_SSH_KEYS") ?? "").split("\n").map((k) => k.trim()).filter(Boolean);
  return {
    token: base.token,
    apiBase: base.apiBase,
    serverType: envParse(
      "SAM_HCLOUD_SERVER_TYPE",
      Name,
      envString(env, "SAM_HCLOUD_SERVER_TYPE", HETZNER_DEFAULTS.serverType),
    ),
    location: envParse("SAM_HCLOUD_LOCATION", Name, envString(env, "SAM_HCLOUD_LOCATION", HETZNER_DEFAULTS.location)),
    image: envParse("SAM_HCLOUD_IMAGE", Name, envString(env, "SAM_HCLOUD_IMAGE", HETZNER_DEFAULTS.image)),
    agentDownloadUrl,
    agentSha256,
    baseImage: envParse(
      "SAM_DEVCONTAINER_IMAGE",
      ImageRef,
      envString(env, "SAM_DEVCONTAINER_IMAGE", HETZNER_DEFAULTS.baseImage),
    ),
    agentPort: envInt(env, "SAM_NODE_AGENT_PORT", 8443, 1, 65535),
    nodejsMirror: optionalUrl(env, "SAM_NODEJS_MIRROR", v.unwrap(CloudInitInput.entries.nodejsMirror)),
    npmRegistry: optionalUrl(env, "SAM_NPM_REGISTRY", v.unwrap(CloudInitInput.entries.npmRegistry)),
    heartbeatSeconds: Math.max(1, Math.round(base.heartbeatMs / 1000)),
    gitIdentity: gitIdentityFromEnv(env),
    sshPublicKeys: keys.map((k) => envParse("SAM_HCLOUD_SSH_KEYS", SshPublicKey, k)),
    requestTimeoutMs: envDuration(env, "SAM_HCLOUD_REQUEST_TIMEOUT", REQUEST_TIMEOUTS.hetznerRequest.ms),
    retry: { baseMs: base.retryBackoffMs, maxMs: REQUEST_TIMEOUTS.hetznerBackoffCap.ms, attempts: 6 },
  };
}
