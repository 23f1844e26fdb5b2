/**
 * The compiled agent for tests that run the real binary (and for the build's recording run, which reads its
 * listening line the same way). `scripts/setup.mjs` rebuilds it exactly when the
 * agent's or shared sources changed (content hashes), so a test run straight from `bun test` gets the same
 * binary `npm test` would, and a fresh one costs a fraction of a second.
 */
import { join } from "node:path";

const root = join(import.meta.dir, "..", "..");
export const AGENT_BINARY = join(root, "agent", "dist", "sam-agent");

export function ensureAgentBinary(): string {
  const setup = Bun.spawnSync(["node", join(root, "scripts", "setup.mjs"), "--quiet"], { stdout: "ignore", stderr: "inherit" });
  if (setup.exitCode !== 0) throw new Error("building the agent binary failed (scripts/setup.mjs)");
  return AGENT_BINARY;
}

/**
 * The URL a started agent prints on its listening line, read from its stdout; null when it did not print
 * one within `ms` (it failed to start or exited). Used by the tests and by the build's recording run.
 */
export async function listeningUrl(stdout: ReadableStream<Uint8Array>, ms = 10_000): Promise<{ url: string | null; out: string }> {
  const reader = stdout.getReader();
  let out = "";
  const deadline = Date.now() + ms;
  while (!/listening on (\S+)/.test(out) && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    out += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return { url: /listening on (\S+)/.exec(out)?.[1] ?? null, out };
}
