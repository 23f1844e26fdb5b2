/** The inference proxy's public surface, for the edge's composition root (edge/compose.ts). */
export { loadInferenceConfig, type InferenceConfig } from "./config.ts";
export { bootstrapGateway } from "./gateway.ts";
export { createInferenceRoutes, FALLBACK_HEADER, UPSTREAM_HEADER, type Inference, type InferenceDeps } from "./routes.ts";
export type { UpstreamMode } from "./upstream.ts";
export { INFERENCE_MIGRATIONS } from "./usage.ts";
