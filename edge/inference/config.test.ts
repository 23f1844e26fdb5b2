import { expect, test } from "bun:test";
import { ConfigError } from "../../shared/env.ts";
import { loadInferenceConfig } from "./config.ts";

test("defaults, overrides and one-line errors naming the variable", () => {
  expect(loadInferenceConfig({})).toMatchObject({
    rateLimitPerMinute: 60,
    maxBodyBytes: 4 * 1024 * 1024,
    models: null,
    firstByteTimeoutMs: 120_000,
  });
  expect(loadInferenceConfig({ SAM_RATE_LIMIT_RPM: "5", SAM_INFERENCE_MODELS: " a/b , @cf/x/y " })).toMatchObject({
    rateLimitPerMinute: 5,
    models: ["a/b", "@cf/x/y"],
  });
  expect(() => loadInferenceConfig({ SAM_RATE_LIMIT_RPM: "0" })).toThrow(
    new ConfigError("SAM_RATE_LIMIT_RPM: expected an integer from 1 to 1000000, got '0'"),
  );
  expect(() => loadInferenceConfig({ SAM_INFERENCE_MODELS: "ok, bad model" })).toThrow(
    "SAM_INFERENCE_MODELS: 'bad model' is not a model id",
  );
  expect(() => loadInferenceConfig({ SAM_INFERENCE_FIRST_BYTE_TIMEOUT: "soon" })).toThrow(
    "SAM_INFERENCE_FIRST_BYTE_TIMEOUT",
  );
});
