/** The inference proxy's public surface, for the edge's composition root (edge/compose.ts). */
export { type InferenceConfig, loadInferenceConfig } from "./config.ts";
export { bootstrapGateway } from "./gateway.ts";
export {
  createInferenceRoutes,
  FALLBACK_HEADER,
  type Inference,
  type InferenceDeps,
  UPSTREAM_HEADER,
} from "./routes.ts";
export type { UpstreamMode } from "./upstream.ts";
export { INFERENCE_MIGRATIONS } from "./usage.ts";
