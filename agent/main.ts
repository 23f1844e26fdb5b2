/**
 * Entry of the `sam-agent` binary. Exit codes: 0 after a graceful stop, 2 for a configuration error, 1 when
 * the agent cannot start (a read-only or full data dir, a port in use); each with one line on stderr.
 */
import { ConfigError } from "../shared/env.ts";
import { SAM_VERSION } from "../shared/version.ts";
import { startAgent, StartError } from "./start.ts";
import { helpText, loadAgentConfig, parseArgs } from "./config/index.ts";
import { loadTaskExecutor, type WorkConfig, workConfigFromEnv } from "./work/index.ts";
import { REQUEST_TIMEOUTS } from "../shared/timeouts.ts";
import { probeSandbox } from "./work/sandbox/probe.ts";
import { listeningLine } from "./listening-line.ts";

function fail(code: number, message: string): never {
  console.error(message);
  process.exit(code);
}

let config;
let work: WorkConfig;
try {
  const invocation = parseArgs(process.argv.slice(2), process.env);
  if (invocation.action === "version") {
    console.log(SAM_VERSION);
    process.exit(0);
  }
  if (invocation.action === "help") {
    console.log(helpText(SAM_VERSION));
    process.exit(0);
  }
  config = await loadAgentConfig(invocation.env);
  work = workConfigFromEnv(invocation.env, config.dataDir);
} catch (err) {
  if (err instanceof ConfigError) fail(2, `sam-agent: configuration error: ${err.message}`);
  throw err;
}

let agent;
try {
  // Tasks get the agent's environment minus its secrets (agent/work/child-env.ts). The executor's code is
  // loaded on the first task (agent/work/index.ts).
  agent = await startAgent(config, {
    executor: (parts) => loadTaskExecutor({ config: work, ...parts, env: process.env }),
  });
} catch (err) {
  if (err instanceof StartError) fail(1, `sam-agent: cannot start: ${err.message}`);
  fail(1, `sam-agent: cannot start: ${(err as Error).message}`);
}
console.log(listeningLine(SAM_VERSION, agent.url, config.nodeId));
// Said once at start, so an operator sees it before the first task is refused (or runs unsandboxed).
const sandbox = probeSandbox(work.sandbox, process.env.PATH);
if (sandbox.state === "unavailable") console.error(`sam-agent: warning: ${sandbox.message}`);
if (sandbox.state === "off") {
  console.error(
    "sam-agent: warning: SAM_TASK_SANDBOX=off: host-mode tasks run unsandboxed, as this agent's user (unsafe)",
  );
}

const running = agent;
process.on("uncaughtException", (err) => {
  // Keep serving: the node's history and heartbeats matter more than one failed callback.
  console.error(`sam-agent: unexpected error: ${err.message}`);
  running.events.record({ type: "error", level: "error", message: `unexpected error: ${err.message}` });
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, async () => {
    const guard = setTimeout(
      () => fail(1, `sam-agent: shutdown took longer than ${REQUEST_TIMEOUTS.agentShutdown.ms / 1000} s; exiting`),
      REQUEST_TIMEOUTS.agentShutdown.ms,
    );
    await running.stop();
    clearTimeout(guard);
    process.exit(0);
  });
}
