/**
 * The agent's configuration (docs/protocol.md § Agent configuration): env, or `--kebab-case value` flags
 * of the same names, validated into one object. Every bad value is a `ConfigError` whose one-line message
 * names the variable; `main.ts` prints it and exits 2. Secrets come only from the `SAM_TOKEN_FILE` file.
 */
import * as v from "valibot";
import { ConfigError, type Env, envChoice, envDuration, envInt, envParse, envString } from "../../shared/env.ts";
import { certificateDer, formatFingerprint } from "../../shared/tls.ts";
import { TIMER_BASES } from "../../shared/timeouts.ts";
import { taskSlotsFromEnv } from "../../shared/wire/agent.ts";
import { Id } from "../../shared/wire/common.ts";
import { type BootSource, DEFAULT_JOURNAL_COMMAND, DEFAULT_SYSLOG_PATH } from "../boot/index.ts";

export type AgentConfig = {
  nodeId: string;
  controlPlaneUrl: string;
  tokenFile: string;
  /** Presented to the edge on `/api/agent/*`. */
  nodeToken: string;
  /** What this agent's own routes accept. */
  agentToken: string;
  host: string;
  port: number;
  publicUrl: string | null;
  dataDir: string;
  tls: { cert: string; key: string; fingerprint: string } | null;
  /** Why this agent runs degraded (it reports ready with this reason and the edge gives it no work), or null. */
  degraded: string | null;
  heartbeatMs: number;
  metricsMs: number;
  retentionMs: number;
  bootSource: BootSource;
  /** Test seam and operator escape hatch: the command that prints `sam-boot` journal entries as JSON. */
  bootJournalCommand: string[];
  bootSyslogPath: string;
  workspaceMode: "auto" | "host" | "devcontainer";
  /** While this file exists the boot still installs the devcontainer CLI (agent/work/workspace.ts). */
  devcontainerCliPending: string | null;
  maxConcurrentTasks: number;
};

/** Every setting, in the order `--help` lists them. */
export const SETTINGS: { name: string; default: string; meaning: string }[] = [
  { name: "SAM_NODE_ID", default: "required", meaning: "the node's id" },
  {
    name: "SAM_CONTROL_PLANE_URL",
    default: "required",
    meaning: "the edge's base URL (callbacks go to $URL/api/agent/*)",
  },
  {
    name: "SAM_TOKEN_FILE",
    default: "required",
    meaning: "0600 file with SAM_NODE_TOKEN=… and SAM_AGENT_TOKEN=… lines",
  },
  { name: "SAM_AGENT_HOST", default: "0.0.0.0", meaning: "listen address" },
  { name: "SAM_AGENT_PORT", default: "8443", meaning: "listen port; 0 picks a free one" },
  { name: "SAM_AGENT_PUBLIC_URL", default: "the listen URL", meaning: "the URL reported in the ready callback" },
  { name: "SAM_AGENT_DATA_DIR", default: "/var/lib/sam-agent", meaning: "events.db, metrics.db, workspaces" },
  { name: "SAM_TLS_CERT", default: "-", meaning: "PEM certificate to serve HTTPS with (needs SAM_TLS_KEY)" },
  { name: "SAM_TLS_KEY", default: "-", meaning: "PEM private key of SAM_TLS_CERT" },
  {
    name: "SAM_TLS_MISSING",
    default: "fail",
    meaning:
      "fail (exit 2), or degrade: start on loopback only and report ready with the missing certificate as the reason",
  },
  { name: "SAM_HEARTBEAT_INTERVAL", default: "30s", meaning: "heartbeat period" },
  { name: "SAM_METRICS_INTERVAL", default: "60s", meaning: "resource-monitor period" },
  { name: "SAM_EVENT_RETENTION", default: "7d", meaning: "retention of events and metrics" },
  { name: "SAM_BOOT_SOURCE", default: "auto", meaning: "auto (journald, then syslog), journald, syslog or none" },
  {
    name: "SAM_BOOT_JOURNAL_COMMAND",
    default: DEFAULT_JOURNAL_COMMAND.join(" "),
    meaning: "command printing the sam-boot journal as JSON lines",
  },
  {
    name: "SAM_BOOT_SYSLOG_PATH",
    default: DEFAULT_SYSLOG_PATH,
    meaning: "syslog file read when journald has no markers",
  },
  { name: "SAM_WORKSPACE_MODE", default: "auto", meaning: "host, devcontainer, or auto" },
  { name: "SAM_MAX_CONCURRENT_TASKS", default: "2", meaning: "tasks at once on this node" },
  // Read by agent/work (docs/work.md); listed here so --help shows them and the flags exist.
  { name: "SAM_KEEP_FAILED_WORKSPACES", default: "off", meaning: "keep a failed task's workspace for inspection" },
  {
    name: "SAM_DEVCONTAINER_IMAGE",
    default: "mcr.microsoft.com/devcontainers/base:ubuntu",
    meaning: "image when a repo has no devcontainer.json",
  },
  {
    name: "SAM_DEVCONTAINER_CLI_PENDING",
    default: "none",
    meaning:
      "a file that exists while the boot still installs the devcontainer CLI: devcontainer workspaces are offered and a task waits for the CLI",
  },
  {
    name: "SAM_AGENT_MODEL",
    default: "@cf/qwen/qwen3-30b-a3b-fp8",
    meaning: "the coding agent's model when a task names none",
  },
  { name: "SAM_AGENT_MAX_STEPS", default: "30", meaning: "built-in agent: model rounds before it gives up" },
  { name: "SAM_AGENT_COMMAND_TIMEOUT", default: "120s", meaning: "built-in agent: limit of one run_command" },
  { name: "SAM_PATCH_MAX_BYTES", default: "1000000", meaning: "cap of the patch in a task's result" },
  { name: "SAM_KILL_GRACE", default: "3s", meaning: "SIGTERM to SIGKILL grace when a task is cancelled or times out" },
  // Delivery of a task's work as a branch and pull request (docs/delivery.md).
  { name: "SAM_GIT_AUTHOR_NAME", default: "SAM", meaning: "author of the commit SAM pushes" },
  { name: "SAM_GIT_AUTHOR_EMAIL", default: "sam@localhost", meaning: "author e-mail of the commit SAM pushes" },
  { name: "SAM_GIT_COMMITTER_NAME", default: "the author", meaning: "committer of the commit SAM pushes" },
  { name: "SAM_GIT_COMMITTER_EMAIL", default: "the author's", meaning: "committer e-mail of the commit SAM pushes" },
  {
    name: "SAM_TASK_SEES_REPO_CREDENTIAL",
    default: "off",
    meaning: "let the task's own git use the repo credential (a credential helper in its environment)",
  },
  { name: "SAM_RETRY_BACKOFF", default: "2s", meaning: "first backoff of a delivery retry (doubles per attempt)" },
  // The host-mode task sandbox (docs/sandbox.md).
  {
    name: "SAM_TASK_SANDBOX",
    default: "on",
    meaning: "on: host-mode tasks run in bubblewrap or are refused; off: unsandboxed (UNSAFE)",
  },
  { name: "SAM_TASK_UID", default: "65534", meaning: "uid a sandboxed task runs as (when the agent is root)" },
  { name: "SAM_TASK_GID", default: "65534", meaning: "gid a sandboxed task runs as (when the agent is root)" },
  { name: "SAM_TASK_MAX_PROCESSES", default: "512", meaning: "RLIMIT_NPROC of a task (counted per uid)" },
  { name: "SAM_TASK_MAX_OPEN_FILES", default: "4096", meaning: "RLIMIT_NOFILE of a task's processes" },
  {
    name: "SAM_TASK_MEMORY_LIMIT",
    default: "4g",
    meaning: "RLIMIT_AS (address space) of each task process, or unlimited",
  },
  {
    name: "SAM_TASK_TOOL_PATHS",
    default: "-",
    meaning: "colon-separated dirs a sandboxed task may read and run (CLIs installed outside /usr)",
  },
  { name: "SAM_TASK_CPU_LIMIT", default: "1h", meaning: "RLIMIT_CPU (CPU time) of each task process, or unlimited" },
];

const flagName = (env: string) => `--${env.replace(/^SAM_/, "").toLowerCase().replace(/_/g, "-")}`;
const FLAGS = new Map(SETTINGS.map((s) => [flagName(s.name), s.name]));

export type Invocation = { action: "run" | "version" | "help"; env: Env };

/**
 * Our own argv parsing (a compiled Bun binary handles none): `--version`, `--help`, and `--node-id x` or
 * `--node-id=x` for each setting, overriding the environment.
 */
export function parseArgs(argv: string[], env: Env): Invocation {
  const out: Env = { ...env };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--version" || arg === "-v") return { action: "version", env: out };
    if (arg === "--help" || arg === "-h") return { action: "help", env: out };
    const [flag, inline] = arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined];
    const name = FLAGS.get(flag);
    if (!name) throw new ConfigError(`${flag}: unknown option; see --help`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new ConfigError(`${flag}: needs a value`);
    out[name] = value;
  }
  return { action: "run", env: out };
}

export function helpText(version: string): string {
  const width = Math.max(...SETTINGS.map((s) => flagName(s.name).length));
  const rows = SETTINGS.map((s) =>
    `  ${flagName(s.name).padEnd(width)}  ${s.name} (default ${s.default}): ${s.meaning}`
  );
  return [
    `sam-agent ${version}: the SAM node agent (event log, resource monitor, boot timeline, task runner).`,
    "",
    "Usage: sam-agent [--flag value]...   Every setting is an environment variable or the flag beside it.",
    "",
    ...rows,
    "",
    "  --version  print the version      --help  print this text",
  ].join("\n");
}

// Bearer tokens must fit RFC 6750's token68, or no Authorization header could ever carry them.
const Token = v.pipe(
  v.string(),
  v.minLength(16, "must be at least 16 characters"),
  v.regex(/^[A-Za-z0-9._~+/-]+=*$/, "must be a bearer token (letters, digits, ._~+/-)"),
);

/** Parse the `KEY=VALUE` secrets file; quotes around a value are allowed, `#` lines are comments. */
export function parseTokenFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq < 1) continue;
    out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim().replace(/^(['"])(.*)\1$/, "$2");
  }
  return out;
}

/** Bun's file read, not node:fs: configuration is read at every start (runtime/lazy-node-modules.ts). */
async function readText(path: string): Promise<string> {
  return await Bun.file(path).text();
}

async function readTokens(path: string): Promise<{ nodeToken: string; agentToken: string }> {
  let text: string;
  try {
    text = await readText(path);
  } catch (err) {
    throw new ConfigError(`SAM_TOKEN_FILE: cannot read '${path}' (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  const tokens = parseTokenFile(text);
  const pick = (key: string) => {
    const value = tokens[key];
    if (!value) throw new ConfigError(`SAM_TOKEN_FILE: '${path}' has no ${key}= line`);
    const r = v.safeParse(Token, value);
    // The message names the key, never the value: a token must not reach a log.
    if (!r.success) throw new ConfigError(`SAM_TOKEN_FILE: ${key} in '${path}' ${r.issues[0]!.message}`);
    return value;
  };
  return { nodeToken: pick("SAM_NODE_TOKEN"), agentToken: pick("SAM_AGENT_TOKEN") };
}

function httpUrl(env: Env, name: string, required: true): string;
function httpUrl(env: Env, name: string, required: false): string | null;
function httpUrl(env: Env, name: string, required: boolean): string | null {
  const raw = envString(env, name);
  if (raw === undefined) {
    if (required) throw new ConfigError(`${name}: required`);
    return null;
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name}: not a URL: '${raw}'`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(`${name}: expected an http(s) URL, got '${url.protocol}'`);
  }
  return raw.replace(/\/+$/, "");
}

/** SHA-256 of the certificate's DER bytes, as `AB:CD:…` (what `openssl x509 -fingerprint -sha256` prints). */
export function certificateFingerprint(pem: string): string | null {
  const der = certificateDer(pem);
  return der ? formatFingerprint(new Bun.CryptoHasher("sha256").update(der).digest("hex")) : null;
}

/**
 * The certificate is made by the boot's `tls` phase. When that phase failed (no route: no address to name),
 * exiting would make systemd restart the agent forever and the edge would learn nothing; with
 * `SAM_TLS_MISSING=degrade` the agent starts degraded instead and reports the failure.
 */
async function readTlsOrDegrade(env: Env): Promise<{ tls: AgentConfig["tls"]; degraded: string | null }> {
  const missing = envChoice(env, "SAM_TLS_MISSING", ["fail", "degrade"], "fail");
  let absent: string | undefined;
  for (const path of [envString(env, "SAM_TLS_CERT"), envString(env, "SAM_TLS_KEY")]) {
    if (path !== undefined && absent === undefined && !(await Bun.file(path).exists())) absent = path;
  }
  if (missing === "degrade" && absent !== undefined) {
    return { tls: null, degraded: `no TLS certificate: '${absent}' does not exist (the boot's tls phase failed?)` };
  }
  return { tls: await readTls(env), degraded: null };
}

async function readTls(env: Env): Promise<AgentConfig["tls"]> {
  const certPath = envString(env, "SAM_TLS_CERT");
  const keyPath = envString(env, "SAM_TLS_KEY");
  if (!certPath && !keyPath) return null;
  if (!certPath || !keyPath) {
    throw new ConfigError(
      `${certPath ? "SAM_TLS_KEY" : "SAM_TLS_CERT"}: required when ${certPath ? "SAM_TLS_CERT" : "SAM_TLS_KEY"} is set`,
    );
  }
  const read = async (name: string, path: string) => {
    try {
      return await readText(path);
    } catch (err) {
      throw new ConfigError(`${name}: cannot read '${path}' (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
  };
  const cert = await read("SAM_TLS_CERT", certPath);
  const key = await read("SAM_TLS_KEY", keyPath);
  const fingerprint = certificateFingerprint(cert);
  if (!fingerprint) throw new ConfigError(`SAM_TLS_CERT: '${certPath}' holds no PEM certificate`);
  if (!key.includes("PRIVATE KEY-----")) throw new ConfigError(`SAM_TLS_KEY: '${keyPath}' holds no PEM private key`);
  return { cert, key, fingerprint };
}

export async function loadAgentConfig(env: Env): Promise<AgentConfig> {
  const nodeIdRaw = envString(env, "SAM_NODE_ID");
  if (nodeIdRaw === undefined) throw new ConfigError("SAM_NODE_ID: required");
  const nodeId = envParse("SAM_NODE_ID", Id, nodeIdRaw);
  const controlPlaneUrl = httpUrl(env, "SAM_CONTROL_PLANE_URL", true);
  const tokenFile = envString(env, "SAM_TOKEN_FILE");
  if (tokenFile === undefined) throw new ConfigError("SAM_TOKEN_FILE: required");
  const journal = envString(env, "SAM_BOOT_JOURNAL_COMMAND");
  const { tls, degraded } = await readTlsOrDegrade(env);
  return {
    nodeId,
    controlPlaneUrl,
    tokenFile,
    ...(await readTokens(tokenFile)),
    // Degraded: nothing to serve safely without TLS, so only this machine can reach the agent.
    host: degraded ? "127.0.0.1" : envString(env, "SAM_AGENT_HOST", "0.0.0.0"),
    port: envInt(env, "SAM_AGENT_PORT", 8443, 0, 65535),
    publicUrl: httpUrl(env, "SAM_AGENT_PUBLIC_URL", false),
    dataDir: envString(env, "SAM_AGENT_DATA_DIR", "/var/lib/sam-agent"),
    tls,
    degraded,
    heartbeatMs: envDuration(env, TIMER_BASES.heartbeat.env, TIMER_BASES.heartbeat.default),
    metricsMs: envDuration(env, "SAM_METRICS_INTERVAL", 60_000),
    retentionMs: envDuration(env, "SAM_EVENT_RETENTION", 7 * 86_400_000),
    bootSource: envChoice(env, "SAM_BOOT_SOURCE", ["auto", "journald", "syslog", "none"], "auto"),
    bootJournalCommand: journal ? journal.split(/\s+/) : DEFAULT_JOURNAL_COMMAND,
    bootSyslogPath: envString(env, "SAM_BOOT_SYSLOG_PATH", DEFAULT_SYSLOG_PATH),
    workspaceMode: envChoice(env, "SAM_WORKSPACE_MODE", ["auto", "host", "devcontainer"], "auto"),
    devcontainerCliPending: envString(env, "SAM_DEVCONTAINER_CLI_PENDING") ?? null,
    maxConcurrentTasks: taskSlotsFromEnv(env),
  };
}
