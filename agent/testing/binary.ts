/**
 * The compiled agent for tests that run the real binary. `scripts/setup.mjs` rebuilds it exactly when the
 * agent's or shared sources changed (content hashes), so a test run straight from `bun test` gets the same
 * binary `npm test` would, and a fresh one costs a fraction of a second.
 */
import { join } from "node:path";

const root = join(import.meta.dir, "..", "..");
export const AGENT_BINARY = join(root, "agent", "dist", "sam-agent");

export function ensureAgentBinary(): string {
  const setup = Bun.spawnSync(["node", join(root, "scripts", "setup.mjs"), "--quiet"], {
    stdout: "ignore",
    stderr: "inherit",
  });
  if (setup.exitCode !== 0) throw new Error("building the agent binary failed (scripts/setup.mjs)");
  return AGENT_BINARY;
}

export { listeningUrl } from "../listening-line.ts";
