/**
 * Which upstream serves a chat completion, and how to address it (docs/inference.md): AI Gateway when
 * the flag is on (with the Workers AI REST API as the fallback), else the REST API, else a generic
 * OpenAI-compatible server, else nothing — and then a 503 that names the variables to set.
 */
import type { Caller } from "../auth/caller.ts";
import type { EdgeConfig } from "../config.ts";

export type UpstreamPath = "gateway" | "rest" | "openai-compatible";
export type UpstreamMode = UpstreamPath | "none";
export type Upstream = { path: UpstreamPath; url: string; headers: Record<string, string> };

export type InferenceCaller = Extract<Caller, { kind: "key" } | { kind: "task" }>;

type Cloudflare = EdgeConfig["cloudflare"];

const workersAi = (cf: Cloudflare) => Boolean(cf.accountId && cf.apiToken);

/** The mode the configuration asks for, before the gateway bootstrap has had its say. */
export function configuredMode(config: EdgeConfig): UpstreamMode {
  const cf = config.cloudflare;
  if (cf.aiGateway && cf.gatewayId && workersAi(cf)) return "gateway";
  if (workersAi(cf)) return "rest";
  if (config.inference.url) return "openai-compatible";
  return "none";
}

/** The 503's message: what is missing and which variables fix it. */
export function notConfiguredMessage(config: EdgeConfig): string {
  const cf = config.cloudflare;
  const missing = [!cf.accountId && "CF_ACCOUNT_ID", !cf.apiToken && "CF_API_TOKEN"].filter(Boolean).join(" and ");
  const why = cf.aiGateway
    ? `SAM_AI_GATEWAY is on but ${missing} ${missing.includes(" and ") ? "are" : "is"} not set`
    : "no inference upstream is configured";
  return `${why}: set CF_ACCOUNT_ID and CF_API_TOKEN for Cloudflare Workers AI ` +
    "(plus SAM_AI_GATEWAY=on and CF_AI_GATEWAY_ID to route through AI Gateway), " +
    "or SAM_INFERENCE_URL (and SAM_INFERENCE_KEY) for an OpenAI-compatible server";
}

/** At most 5 entries (AI Gateway keeps only the first five): user, key, task, node, model. */
export function gatewayMetadata(caller: InferenceCaller, model: string): Record<string, string> {
  const meta: Record<string, string> = { user: caller.name, key: caller.keyId };
  if (caller.kind === "task") {
    meta.task = caller.taskId;
    if (caller.nodeId) meta.node = caller.nodeId;
  }
  meta.model = model;
  return meta;
}

/** The OpenAI-compatible operations every upstream serves under its `/v1` base. */
export type Operation = "chat/completions" | "embeddings";

function restUpstream(cf: Cloudflare, op: Operation): Upstream {
  return {
    path: "rest",
    url: `${cf.apiBase}/accounts/${encodeURIComponent(cf.accountId!)}/ai/v1/${op}`,
    headers: { "content-type": "application/json", authorization: `Bearer ${cf.apiToken}` },
  };
}

/** The upstreams to try, in order: the gateway falls back to REST once; the others have no fallback. */
export function chatUpstreams(
  config: EdgeConfig,
  mode: UpstreamMode,
  caller: InferenceCaller,
  model: string,
  op: Operation = "chat/completions",
): Upstream[] {
  const cf = config.cloudflare;
  switch (mode) {
    case "gateway": {
      const headers: Record<string, string> = {
        "content-type": "application/json",
        // Provider auth (Workers AI) goes in Authorization; the gateway's own token in cf-aig-authorization.
        authorization: `Bearer ${cf.apiToken}`,
        "cf-aig-metadata": JSON.stringify(gatewayMetadata(caller, model)),
      };
      if (cf.aigToken) headers["cf-aig-authorization"] = `Bearer ${cf.aigToken}`;
      const url = `${cf.gatewayBase}/${encodeURIComponent(cf.accountId!)}/${
        encodeURIComponent(cf.gatewayId!)
      }/workers-ai/v1/${op}`;
      return [{ path: "gateway", url, headers }, restUpstream(cf, op)];
    }
    case "rest":
      return [restUpstream(cf, op)];
    case "openai-compatible": {
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (config.inference.key) headers.authorization = `Bearer ${config.inference.key}`;
      return [{ path: "openai-compatible", url: `${config.inference.url}/${op}`, headers }];
    }
    case "none":
      return [];
  }
}
