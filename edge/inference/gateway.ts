/**
 * AI Gateway bootstrap, run once at start when `SAM_AI_GATEWAY=on`: look the gateway up through the
 * Cloudflare API and create it if missing, with SAM's settings (logs on, a gateway-wide rate limit,
 * authentication when `CF_AIG_TOKEN` is set). An existing gateway whose rate limit differs from
 * `SAM_AI_GATEWAY_RPM`, or that is open while `CF_AIG_TOKEN` is set, is updated (PUT). One that requires
 * authentication while SAM has no `CF_AIG_TOKEN` would refuse every request, so inference uses REST and the
 * log says why. A failed create is followed by a second lookup (another instance may have created it; the
 * API documents no "already exists" error). Never throws: any failure is logged and REST is used instead.
 */
import * as v from "valibot";
import type { EdgeConfig } from "../config.ts";
import type { InferenceConfig } from "./config.ts";
import { configuredMode, type UpstreamMode } from "./upstream.ts";

const Envelope = v.looseObject({
  success: v.boolean(),
  errors: v.optional(v.array(v.looseObject({ code: v.optional(v.number()), message: v.optional(v.string()) })), []),
});

/** The fields of a gateway SAM reads; the rest is kept as Cloudflare sent it and sent back on update. */
const Gateway = v.looseObject({
  id: v.string(),
  authentication: v.optional(v.nullable(v.boolean())),
  rate_limiting_limit: v.optional(v.nullable(v.number())),
  rate_limiting_interval: v.optional(v.nullable(v.number())),
});
type Gateway = v.InferOutput<typeof Gateway>;
const Found = v.looseObject({ success: v.literal(true), result: Gateway });

/** Fields Cloudflare sets itself; an update sends everything else back unchanged. */
const READ_ONLY = new Set(["id", "created_at", "modified_at", "account_id", "account_tag", "internal_id"]);

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
  const fallback: UpstreamMode = cf.accountId && cf.apiToken
    ? "rest"
    : config.inference.url
    ? "openai-compatible"
    : "none";
  if (mode !== "gateway") {
    log(`sam inference: SAM_AI_GATEWAY is on but CF_API_TOKEN is not set; inference uses ${fallback}`);
    return fallback;
  }
  const name = `AI Gateway '${cf.gatewayId}'`;
  const base = `${cf.apiBase}/accounts/${encodeURIComponent(cf.accountId!)}/ai-gateway/gateways`;
  const one = `${base}/${encodeURIComponent(cf.gatewayId!)}`;
  const headers = { authorization: `Bearer ${cf.apiToken}`, "content-type": "application/json" };
  const rpm = opts.gatewayRateLimitPerMinute ?? 600;
  const wanted = {
    rate_limiting_interval: rpm > 0 ? 60 : 0,
    rate_limiting_limit: rpm,
    authentication: Boolean(cf.aigToken),
  };
  const lookup = async () => {
    const found = await call(f, one, { headers });
    const parsed = found.status === 200 ? v.safeParse(Found, found.body) : null;
    return { ...found, gateway: parsed?.success ? parsed.output.result : null };
  };

  /** Use an existing gateway, bringing SAM's settings to it where they differ. */
  const settle = async (gw: Gateway, how: string): Promise<UpstreamMode> => {
    if (gw.authentication === true && !cf.aigToken) {
      log(
        `sam inference: ${name} ${how} but requires authentication (cf-aig-authorization) and CF_AIG_TOKEN is not set; inference uses ${fallback}`,
      );
      return fallback;
    }
    const differs = (gw.rate_limiting_limit ?? 0) !== wanted.rate_limiting_limit ||
      (gw.rate_limiting_interval ?? 0) !== wanted.rate_limiting_interval ||
      (wanted.authentication && gw.authentication !== true);
    if (differs) {
      const kept = Object.fromEntries(Object.entries(gw).filter(([k]) => !READ_ONLY.has(k)));
      const updated = await call(f, one, { method: "PUT", headers, body: JSON.stringify({ ...kept, ...wanted }) });
      if (succeeded(updated.status, updated.body)) {
        how += `, updated to SAM's settings (rate limit ${rpm}/min, authentication ${
          wanted.authentication ? "on" : "off"
        })`;
      } else how += ` (cannot update its settings: ${describe(updated.status, updated.body)})`;
    }
    log(`sam inference: ${name} ${how}; inference goes through it`);
    return "gateway";
  };

  try {
    const found = await lookup();
    if (found.gateway) return await settle(found.gateway, "found");
    if (found.status !== 404) {
      log(`sam inference: cannot look up ${name} (${describe(found.status, found.body)}); inference uses ${fallback}`);
      return fallback;
    }
    const created = await call(f, base, {
      method: "POST",
      headers,
      body: JSON.stringify({
        id: cf.gatewayId,
        collect_logs: true,
        cache_ttl: 0,
        cache_invalidate_on_update: false,
        rate_limiting_technique: "sliding",
        ...wanted,
      }),
    });
    if (succeeded(created.status, created.body)) {
      log(`sam inference: ${name} created; inference goes through it`);
      return "gateway";
    }
    // Another instance may have created it meanwhile: the gateway existing is what counts, not the error.
    const again = await lookup();
    if (again.gateway) {
      return await settle(again.gateway, `exists (create answered ${describe(created.status, created.body)})`);
    }
    log(`sam inference: cannot create ${name} (${describe(created.status, created.body)}); inference uses ${fallback}`);
    return fallback;
  } catch (err) {
    const reason = (err as Error).name === "TimeoutError"
      ? `no answer within ${BOOTSTRAP_TIMEOUT_MS / 1000}s`
      : (err as Error).message;
    log(`sam inference: cannot reach the Cloudflare API for ${name} (${reason}); inference uses ${fallback}`);
    return fallback;
  }
}
