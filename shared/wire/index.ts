/** Every wire message of SAM, one import for both sides. */
export * from "./agent.ts";
export * from "./boot.ts";
export * from "./common.ts";
export * from "./events.ts";
export * from "./metrics.ts";
export * from "./task.ts";
export * from "./api.ts";
