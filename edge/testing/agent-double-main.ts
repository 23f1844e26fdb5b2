/**
 * The agent double as a process, configured like the real agent (docs/protocol.md § Agent configuration),
 * so the local provider can start it: `bun edge/testing/agent-double-main.ts`. Calls ready until it gets a
 * 2xx, heartbeats, and stops on SIGTERM/SIGINT.
 */
import { readTokenFile, startAgentDouble } from "./agent-double.ts";
import { parseDuration } from "../../shared/duration.ts";

const env = process.env;
const tokens = readTokenFile(env.SAM_TOKEN_FILE!);
const double = await startAgentDouble({
  nodeId: env.SAM_NODE_ID!,
  controlPlaneUrl: env.SAM_CONTROL_PLANE_URL!,
  ...tokens,
  capacity: Number(env.SAM_MAX_CONCURRENT_TASKS ?? 2),
  // "hold" keeps tasks running (benchmarks: no process per task); the default runs each task's command.
  mode: env.SAM_DOUBLE_MODE === "hold" ? "hold" : "run",
  heartbeatMs: parseDuration(env.SAM_HEARTBEAT_INTERVAL ?? "30s") ?? 30_000,
});
console.log(`agent double for ${env.SAM_NODE_ID} on ${double.url}`);
for (let delay = 50;; delay = Math.min(delay * 2, 2_000)) {
  const res = await double.ready().catch(() => null);
  if (res?.ok) break;
  await new Promise((r) => setTimeout(r, delay)); // backoff between ready attempts, as the real agent does
}
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => void double.stop().then(() => process.exit(0)));
}
