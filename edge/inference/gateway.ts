/**
 * AI Gateway bootstrap, run once at start when `SAM_AI_GATEWAY=on`: look the gateway up through the
 * Cloudflare API and create it if missing, with SAM's settings (logs on, a gateway-wide rate limit,
 * authentication when `CF_AIG_TOKEN` is set). Idempotent: another instance creating it first ("already
 * exists", 409) counts as success. Never throws: any failure is logged and the proxy uses REST instead.
 */
import * as v from "valibot";
import type { EdgeConfig } from "../config.ts";
import type { InferenceConfig } from "./config.ts";
import { configuredMode, type UpstreamMode } from "./upstream.ts";

const Envelope = v.looseObject({
  success: v.boolean(),
  errors: v.optional(v.array(v.looseObject({ code: v.optional(v.number()), message: v.optional(v.string()) })), []),
});

const BOOTSTRAP_TIMEOUT_MS = 10_000;

export type GatewayBootstrapOptions = {
  fetch?: typeof fetch;
  log?: (line: string) => void;
  gatewayRateLimitPerMinute?: InferenceConfig["gatewayRateLimitPerMinute"];
};

const succeeded = (status: number, body: unknown) => {
  const parsed = v.safeParse(Envelope, body);
  return status === 200 && parsed.success && parsed.output.success;
};

function describe(status: number, body: unknown): string {
  const parsed = v.safeParse(Envelope, body);
  const messages = parsed.success ? parsed.output.errors.map((e) => e.message).filter(Boolean) : [];
  return `HTTP ${status}${messages.length ? `: ${messages.join("; ")}` : ""}`;
}

async function call(f: typeof fetch, url: string, init: RequestInit): Promise<{ status: number; body: unknown }> {
  const res = await f(url, { ...init, signal: AbortSignal.timeout(BOOTSTRAP_TIMEOUT_MS) });
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // A proxy's HTML error page: the status says enough.
  }
  return { status: res.status, body };
}

/** Make sure the gateway exists; returns the upstream mode actually in use afterwards. */
export async function bootstrapGateway(config: EdgeConfig, opts: GatewayBootstrapOptions = {}): Promise<UpstreamMode> {
  const f = opts.fetch ?? fetch;
  const log = opts.log ?? ((line: string) => console.log(line));
  const mode = configuredMode(config);
  const cf = config.cloudflare;
  if (!cf.aiGateway) return mode;
  const fallback: UpstreamMode = cf.accountId && cf.apiToken ? "rest" : config.inference.url ? "openai-compatible" : "none";
  if (mode !== "gateway") {
    log(`sam inference: SAM_AI_GATEWAY is on but CF_API_TOKEN is not set; inference uses ${fallback}`);
    return fallback;
  }
  const base = `${cf.apiBase}/accounts/${encodeURIComponent(cf.accountId!)}/ai-gateway/gateways`;
  const headers = { authorization: `Bearer ${cf.apiToken}`, "content-type": "application/json" };
  try {
    const found = await call(f, `${base}/${encodeURIComponent(cf.gatewayId!)}`, { headers });
    if (succeeded(found.status, found.body)) {
      log(`sam inference: AI Gateway '${cf.gatewayId}' found; inference goes through it`);
      return "gateway";
    }
    if (found.status !== 404) {
      log(`sam inference: cannot look up AI Gateway '${cf.gatewayId}' (${describe(found.status, found.body)}); inference uses ${fallback}`);
      return fallback;
    }
    const rpm = opts.gatewayRateLimitPerMinute ?? 600;
    const created = await call(f, base, {
      method: "POST",
      headers,
      body: JSON.stringify({
        id: cf.gatewayId,
        collect_logs: true,
        cache_ttl: 0,
        cache_invalidate_on_update: false,
        rate_limiting_interval: rpm > 0 ? 60 : 0,
        rate_limiting_limit: rpm,
        rate_limiting_technique: "sliding",
        authentication: Boolean(cf.aigToken),
      }),
    });
    const ok = succeeded(created.status, created.body);
    const exists = created.status === 409 || /already exists|exists/i.test(describe(created.status, created.body));
    if (ok || exists) {
      log(`sam inference: AI Gateway '${cf.gatewayId}' ${ok ? "created" : "already exists"}; inference goes through it`);
      return "gateway";
    }
    log(`sam inference: cannot create AI Gateway '${cf.gatewayId}' (${describe(created.status, created.body)}); inference uses ${fallback}`);
    return fallback;
  } catch (err) {
    const reason = (err as Error).name === "TimeoutError" ? `no answer within ${BOOTSTRAP_TIMEOUT_MS / 1000}s` : (err as Error).message;
    log(`sam inference: cannot reach the Cloudflare API for AI Gateway '${cf.gatewayId}' (${reason}); inference uses ${fallback}`);
    return fallback;
  }
}
