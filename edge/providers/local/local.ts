/**
 * The local provider: one agent process per node on this machine (README § Local nodes), each with its own
 * data dir `<dataDir>/nodes/<id>`, a 0600 tokens file, a free port, and a PID file. Agents run in their own
 * session, so a terminal's Ctrl-C reaches only the edge, which stops them in `close()`. After an edge crash
 * (kill -9) the agents live on; a restarted edge re-adopts those its PID files name (see README).
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import type { CreateServerInput, CreateServerResult, Provider, ProviderServer } from "../provider.ts";
import { processExists } from "../../../shared/process.ts";

export type LocalProviderOptions = {
  dataDir: string;
  /** The agent binary, or a command and its arguments (tests run an agent double this way). */
  command: string[];
  heartbeatIntervalMs: number;
  /** Extra environment for every agent (e.g. SAM_MAX_CONCURRENT_TASKS). */
  env?: Record<string, string>;
  /** How long a stopping agent gets between SIGTERM and SIGKILL. */
  stopGraceMs?: number;
};

/** Environment an agent inherits from the edge: enough to run, none of the edge's own secrets. */
const INHERITED_ENV = ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "USER"];
/** Agent settings an operator sets on the edge for its local nodes: how delivery commits and pushes (docs/delivery.md). */
const DELIVERY_SETTINGS = [
  "SAM_GIT_AUTHOR_NAME",
  "SAM_GIT_AUTHOR_EMAIL",
  "SAM_GIT_COMMITTER_NAME",
  "SAM_GIT_COMMITTER_EMAIL",
  "SAM_TASK_SEES_REPO_CREDENTIAL",
  "SAM_RETRY_BACKOFF",
];

/** The task sandbox's settings (docs/sandbox.md) are the agent's, but an operator sets them where the edge starts. */
const SANDBOX_SETTINGS = [
  "SAM_TASK_SANDBOX",
  "SAM_TASK_UID",
  "SAM_TASK_GID",
  "SAM_TASK_MAX_PROCESSES",
  "SAM_TASK_MAX_OPEN_FILES",
  "SAM_TASK_MEMORY_LIMIT",
  "SAM_TASK_CPU_LIMIT",
  "SAM_TASK_TOOL_PATHS",
];

export class LocalProvider implements Provider {
  readonly name = "local" as const;
  private readonly running = new Map<string, { pid: number; nodeId: string; createdAt: number }>();

  constructor(private readonly o: LocalProviderOptions) {
    this.adopt();
  }

  private nodesDir(): string {
    return join(this.o.dataDir, "nodes");
  }

  /** Take over the agents a previous edge process started and that still run; forget the dead ones. */
  private adopt(): void {
    if (!existsSync(this.nodesDir())) return;
    for (const nodeId of readdirSync(this.nodesDir())) {
      const pidFile = join(this.nodesDir(), nodeId, "agent.pid");
      if (!existsSync(pidFile)) continue;
      const pid = Number(readFileSync(pidFile, "utf8").trim());
      if (Number.isInteger(pid) && pid > 0 && isAgentOf(pid, nodeId)) {
        this.running.set(serverIdOf(pid), { pid, nodeId, createdAt: Date.now() });
      } else {
        rmSync(pidFile, { force: true });
      }
    }
  }

  async create(input: CreateServerInput): Promise<CreateServerResult> {
    const [cmd, ...args] = this.o.command;
    if (!cmd) throw new Error("no agent command configured (SAM_AGENT_BINARY)");
    const dir = join(this.nodesDir(), input.nodeId);
    mkdirSync(dir, { recursive: true });
    const tokenFile = join(dir, "tokens");
    writeFileSync(tokenFile, `SAM_NODE_TOKEN=${input.nodeToken}\nSAM_AGENT_TOKEN=${input.agentToken}\n`, {
      mode: 0o600,
    });
    const env: Record<string, string> = {};
    for (const name of [...INHERITED_ENV, ...DELIVERY_SETTINGS, ...SANDBOX_SETTINGS]) {
      if (process.env[name]) env[name] = process.env[name]!;
    }
    Object.assign(env, this.o.env ?? {}, {
      SAM_NODE_ID: input.nodeId,
      SAM_CONTROL_PLANE_URL: input.controlPlaneUrl,
      SAM_TOKEN_FILE: tokenFile,
      SAM_AGENT_HOST: "127.0.0.1",
      SAM_AGENT_PORT: "0",
      SAM_AGENT_DATA_DIR: join(dir, "data"),
      SAM_BOOT_SOURCE: "none",
      SAM_WORKSPACE_MODE: "host",
      SAM_HEARTBEAT_INTERVAL: `${this.o.heartbeatIntervalMs}ms`,
    });
    const createCall = Date.now();
    const log = openSync(join(dir, "agent.log"), "a");
    let pid: number;
    try {
      const child = spawn(cmd, args, { env, stdio: ["ignore", log, log], detached: true });
      pid = await new Promise<number>((resolve, reject) => {
        child.once("spawn", () => resolve(child.pid!));
        child.once("error", (err) => reject(new Error(`cannot start the agent (${cmd}): ${err.message}`)));
      });
      child.unref();
      // Reap the child when it exits, so a stopped agent leaves no zombie behind.
      child.once("exit", () => this.running.delete(serverIdOf(pid)));
    } finally {
      closeSync(log);
    }
    writeFileSync(join(dir, "agent.pid"), `${pid}\n`);
    const server: ProviderServer = {
      id: serverIdOf(pid),
      nodeId: input.nodeId,
      status: "running",
      ipv4: "127.0.0.1",
      createdAt: createCall,
      labels: input.labels,
    };
    this.running.set(server.id, { pid, nodeId: input.nodeId, createdAt: createCall });
    return { server, timings: [{ name: "create_call", at: createCall }, { name: "server_running", at: Date.now() }] };
  }

  async get(serverId: string): Promise<ProviderServer | null> {
    const entry = this.running.get(serverId);
    if (!entry || !isAgentOf(entry.pid, entry.nodeId)) return null;
    return {
      id: serverId,
      nodeId: entry.nodeId,
      status: "running",
      ipv4: "127.0.0.1",
      createdAt: entry.createdAt,
      labels: { "sam-node": entry.nodeId },
    };
  }

  async delete(serverId: string): Promise<void> {
    const entry = this.running.get(serverId);
    if (!entry) return;
    await stopProcess(entry.pid, entry.nodeId, this.o.stopGraceMs ?? 5_000);
    this.running.delete(serverId);
    const dir = join(this.nodesDir(), entry.nodeId);
    rmSync(join(dir, "agent.pid"), { force: true });
    rmSync(join(dir, "tokens"), { force: true });
  }

  async list(): Promise<ProviderServer[]> {
    const out: ProviderServer[] = [];
    for (const id of this.running.keys()) {
      const s = await this.get(id);
      if (s) out.push(s);
    }
    return out;
  }

  /** Edge shutdown: stop every agent this edge runs, so Ctrl-C leaves no orphan. */
  async close(): Promise<void> {
    await Promise.all([...this.running.keys()].map((id) => this.delete(id)));
  }
}

function serverIdOf(pid: number): string {
  return `local-${pid}`;
}

/** Alive and really this node's agent (a PID can be reused after a reboot): its environment names the node. */
function isAgentOf(pid: number, nodeId: string): boolean {
  if (!processExists(pid)) return false;
  try {
    const environ = readFileSync(`/proc/${pid}/environ`, "utf8");
    if (!environ.split("\0").includes(`SAM_NODE_ID=${nodeId}`)) return false;
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z /.test(stat); // a zombie is dead
  } catch {
    return true; // no /proc (not Linux): trust the PID
  }
}

async function stopProcess(pid: number, nodeId: string, graceMs: number): Promise<void> {
  if (!isAgentOf(pid, nodeId)) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAgentOf(pid, nodeId)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}
