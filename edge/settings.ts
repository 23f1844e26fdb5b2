/**
 * The edge's settings as an operator reads them: name, default, meaning, grouped as docs/configuration.md
 * shows them. `loadEdgeConfig` is what reads them; `scripts/config-doc.test.ts` traces its reads and fails
 * when this list and the loader disagree, so the reference cannot drift from the code.
 */
export type Setting = { name: string; default: string; meaning: string };
export type SettingGroup = { title: string; settings: Setting[] };

export const EDGE_SETTINGS: SettingGroup[] = [
  {
    title: "Edge",
    settings: [
      { name: "SAM_PORT", default: "`8787`", meaning: "edge port (`0` picks a free one)" },
      { name: "SAM_HOST", default: "`127.0.0.1`", meaning: "edge listen address" },
      { name: "SAM_DATA_DIR", default: "`.sam`", meaning: "edge data dir: database, admin token, local nodes" },
      {
        name: "SAM_ADMIN_TOKEN",
        default: "generated into the data dir",
        meaning: "operator token for `/api/*` and `/admin` (≥ 16 characters)",
      },
      {
        name: "SAM_DATABASE_URL",
        default: "`file:$SAM_DATA_DIR/sam.db`",
        meaning: "libSQL database: `file:`, `libsql://` (Turso), `http(s)://` or `ws(s)://` (sqld)",
      },
      { name: "SAM_DATABASE_TOKEN", default: "—", meaning: "auth token for Turso/sqld" },
      {
        name: "SAM_PUBLIC_URL",
        default: "the listen URL",
        meaning: "the URL agents (and coding agents on nodes) use to reach the edge",
      },
      {
        name: "SAM_MAX_NODES",
        default: "`10`",
        meaning: "most nodes alive at once (a database invariant across instances); further tasks wait in `queued`",
      },
      {
        name: "SAM_TASK_LOG_MAX_LINES",
        default: "`10000`",
        meaning:
          "log lines the edge keeps per task, then one truncation marker (the node's event store keeps them all)",
      },
    ],
  },
  {
    title: "Security and limits",
    settings: [
      {
        name: "SAM_SECRET_KEY",
        default: "generated into the data dir",
        meaning:
          "32 bytes (hex or base64) sealing agent tokens and repo credentials in the database (AES-GCM); required on Deno Deploy and shared by instances of one database",
      },
      {
        name: "SAM_TRUST_PROXY",
        default: "`off`",
        meaning: "`on`: believe `X-Forwarded-Proto` (the admin cookie's `Secure` flag)",
      },
      {
        name: "SAM_API_READ_RPM",
        default: "`600`",
        meaning:
          "`/api/tasks*` requests (other than submissions) per key per minute; submissions use the key's limit, else `SAM_RATE_LIMIT_RPM`",
      },
      {
        name: "SAM_SSE_MAX_PER_KEY",
        default: "`16`",
        meaning: "concurrent task event follows per key, per instance (429 with `Retry-After` beyond)",
      },
      { name: "SAM_SSE_MAX", default: "`256`", meaning: "concurrent task event follows per instance, all keys" },
      {
        name: "DENO_DEPLOYMENT_ID",
        default: "set by Deno Deploy",
        meaning: "marks a Deno Deploy instance: selects the deploy profile (docs/deploy.md)",
      },
      {
        name: "SAM_PROFILE",
        default: "`deploy` on Deno Deploy, else `local`",
        meaning:
          "`deploy` refuses a `file:` database, the local provider, a missing admin token or secret key, and writes nothing to disk",
      },
    ],
  },
  {
    title: "Providers",
    settings: [
      { name: "SAM_PROVIDER", default: "`local`, or `hetzner` when `HCLOUD_TOKEN` is set", meaning: "where nodes run" },
      {
        name: "SAM_AGENT_BINARY",
        default: "`agent/dist/sam-agent`",
        meaning: "local provider: the agent binary, or a command and its arguments split on spaces",
      },
      { name: "HCLOUD_TOKEN", default: "—", meaning: "Hetzner Cloud API token (read & write)" },
      {
        name: "SAM_HCLOUD_API_BASE",
        default: "`https://api.hetzner.cloud/v1`",
        meaning: "Hetzner API base (a fake's URL in tests)",
      },
      {
        name: "SAM_HCLOUD_SERVER_TYPE",
        default: "`cx23`",
        meaning:
          "server type; `cax…` types boot the arm64 plan (`cx22` cannot be ordered since 2026-01-01, docs/hetzner.md)",
      },
      { name: "SAM_HCLOUD_LOCATION", default: "`fsn1`", meaning: "location" },
      { name: "SAM_HCLOUD_IMAGE", default: "`docker-ce`", meaning: "image; must have Docker preinstalled" },
      {
        name: "SAM_AGENT_DOWNLOAD_URL",
        default: "— (required for hetzner)",
        meaning: "where VMs download the agent binary (http(s), no query string)",
      },
      {
        name: "SAM_AGENT_SHA256",
        default: "— (required for hetzner)",
        meaning: "the agent binary's sha256; a mismatch is never installed",
      },
      {
        name: "SAM_DEVCONTAINER_IMAGE",
        default: "`mcr.microsoft.com/devcontainers/base:ubuntu`",
        meaning: "the one image a boot pulls",
      },
      {
        name: "SAM_NODEJS_MIRROR",
        default: "`https://nodejs.org/dist`",
        meaning: "where a booting VM fetches the Node.js tarball and its SHASUMS256.txt (a mirror, an air-gapped copy)",
      },
      {
        name: "SAM_NPM_REGISTRY",
        default: "`https://registry.npmjs.org`",
        meaning: "the npm registry a booting VM installs the devcontainer CLI from",
      },
      {
        name: "SAM_GIT_AUTHOR_NAME",
        default: "`SAM`",
        meaning: "author of the commits VMs' agents push for tasks (docs/delivery.md); local agents read it themselves",
      },
      { name: "SAM_GIT_AUTHOR_EMAIL", default: "`sam@localhost`", meaning: "that author's e-mail" },
      { name: "SAM_GIT_COMMITTER_NAME", default: "the author", meaning: "committer of those commits" },
      { name: "SAM_GIT_COMMITTER_EMAIL", default: "the author's", meaning: "that committer's e-mail" },
      {
        name: "SAM_NODE_AGENT_PORT",
        default: "`8443`",
        meaning: "the agent's HTTPS port (the firewall opens only it and SSH)",
      },
      {
        name: "SAM_HCLOUD_SSH_KEYS",
        default: "—",
        meaning: "OpenSSH public key lines (newline-separated) for root, to debug a node",
      },
      { name: "SAM_HCLOUD_REQUEST_TIMEOUT", default: "`15s`", meaning: "per-request timeout of a Hetzner API call" },
      {
        name: "SAM_ORPHAN_REAPER",
        default: "`on` with hetzner, else `off`",
        meaning:
          "the tick deletes servers with SAM's label of no live node (`on`), only logs what it would delete (`dry-run`), or neither (`off`); docs/hetzner.md",
      },
    ],
  },
  {
    title: "Inference",
    settings: [
      { name: "CF_ACCOUNT_ID", default: "—", meaning: "Cloudflare account (Workers AI, AI Gateway)" },
      {
        name: "CF_API_TOKEN",
        default: "—",
        meaning: "Cloudflare API token: Workers AI Read; AI Gateway Read and Edit to create the gateway",
      },
      {
        name: "SAM_AI_GATEWAY",
        default: "`off`",
        meaning: "`on` routes inference through Cloudflare AI Gateway (needs `CF_ACCOUNT_ID`, `CF_AI_GATEWAY_ID`)",
      },
      { name: "CF_AI_GATEWAY_ID", default: "—", meaning: "the gateway's id" },
      { name: "CF_AIG_TOKEN", default: "—", meaning: "token of an authenticated gateway" },
      { name: "SAM_CF_API_BASE", default: "`https://api.cloudflare.com/client/v4`", meaning: "Cloudflare API base" },
      { name: "SAM_CF_GATEWAY_BASE", default: "`https://gateway.ai.cloudflare.com/v1`", meaning: "AI Gateway base" },
      { name: "SAM_INFERENCE_URL", default: "—", meaning: "a generic OpenAI-compatible upstream (its `/v1` base URL)" },
      { name: "SAM_INFERENCE_KEY", default: "—", meaning: "that upstream's key" },
      {
        name: "SAM_RATE_LIMIT_RPM",
        default: "`60`",
        meaning: "requests per minute per API key (a key's own limit wins); 429 with `Retry-After`",
      },
      { name: "SAM_INFERENCE_MAX_BODY_BYTES", default: "`4194304`", meaning: "largest request body (413 above it)" },
      {
        name: "SAM_INFERENCE_MODELS",
        default: "the curated Workers AI list",
        meaning: "comma-separated model allowlist; `GET /v1/models` shows it",
      },
      {
        name: "SAM_INFERENCE_FIRST_BYTE_TIMEOUT",
        default: "`120s`",
        meaning: "an upstream that has not answered within this is abandoned (504, or REST after the gateway)",
      },
      {
        name: "SAM_USAGE_FLUSH_INTERVAL",
        default: "`5s`",
        meaning: "how often recorded usage is written to the database",
      },
      {
        name: "SAM_AI_GATEWAY_RPM",
        default: "`600`",
        meaning: "the gateway-wide rate limit set on the gateway (`0`: none)",
      },
    ],
  },
];
