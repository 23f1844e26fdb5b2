/**
 * The inference proxy's own settings (limits, allowlist, upstream timing), read from the same environment
 * map as `edge/config.ts`. Which upstream to use comes from `EdgeConfig` (`cloudflare.*`, `inference.*`);
 * this module only adds what the proxy alone needs. Bad values throw a one-line `ConfigError`.
 */
import { ConfigError, type Env, envDuration, envInt, envString } from "../../shared/env.ts";

export type InferenceConfig = {
  /** Requests per minute per API key when the key has no limit of its own. */
  rateLimitPerMinute: number;
  /** Largest accepted request body, in bytes. */
  maxBodyBytes: number;
  /** Model ids callers may use; null means the built-in catalogue (Cloudflare) or anything (generic upstream). */
  models: string[] | null;
  /** An upstream that has not answered (status and headers) within this is abandoned. */
  firstByteTimeoutMs: number;
  /** How often recorded usage is written to the database. */
  usageFlushMs: number;
  /** Gateway-wide rate limit (requests per minute) set when SAM creates the AI Gateway. */
  gatewayRateLimitPerMinute: number;
};

const MODEL_ID = /^[A-Za-z0-9@/._:-]{1,200}$/;

export function loadInferenceConfig(env: Env): InferenceConfig {
  const rawModels = envString(env, "SAM_INFERENCE_MODELS");
  let models: string[] | null = null;
  if (rawModels !== undefined) {
    models = rawModels.split(",").map((m) => m.trim()).filter((m) => m !== "");
    const bad = models.find((m) => !MODEL_ID.test(m));
    if (bad !== undefined) throw new ConfigError(`SAM_INFERENCE_MODELS: '${bad}' is not a model id`);
    if (models.length === 0) throw new ConfigError("SAM_INFERENCE_MODELS: list at least one model id, comma-separated");
  }
  return {
    rateLimitPerMinute: envInt(env, "SAM_RATE_LIMIT_RPM", 60, 1, 1_000_000),
    maxBodyBytes: envInt(env, "SAM_INFERENCE_MAX_BODY_BYTES", 4 * 1024 * 1024, 1024, 256 * 1024 * 1024),
    models,
    firstByteTimeoutMs: envDuration(env, "SAM_INFERENCE_FIRST_BYTE_TIMEOUT", 120_000),
    usageFlushMs: envDuration(env, "SAM_USAGE_FLUSH_INTERVAL", 5_000),
    gatewayRateLimitPerMinute: envInt(env, "SAM_AI_GATEWAY_RPM", 600, 0, 1_000_000),
  };
}
