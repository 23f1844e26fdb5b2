/**
 * The agent assembled (docs/architecture.md § The agent): open both databases, serve HTTP, start
 * the resource monitor and retention, read the boot timeline, report ready, then heartbeat. `stop()` is
 * the graceful shutdown SIGTERM triggers.
 */
import type { AgentCapabilities, AgentReady } from "../shared/wire/agent.ts";
import type { BootTimeline } from "../shared/wire/boot.ts";
import { EVENT_TYPES } from "../shared/wire/events.ts";
import { firstCertificatePem } from "../shared/tls.ts";
import { SAM_VERSION } from "../shared/version.ts";
import { kernelBootId, kernelUptimeMs, readBootTimeline } from "./boot/index.ts";
import type { AgentConfig } from "./config/index.ts";
import type { ControlPlane, EventRecorder, TaskExecutor } from "./contracts.ts";
import { ControlPlaneClient, sendReady, startHeartbeats } from "./control-plane/client.ts";
import { EventStore } from "./events/store.ts";
import { ResourceMonitor } from "./monitor/monitor.ts";
import { MetricsStore } from "./monitor/store.ts";
import { createAgentApp } from "./server/app.ts";
import { nodeFs, nodeOs } from "./runtime/lazy-node-modules.ts";
import { workCapabilities } from "./work/index.ts";
import { sweepExportTemps } from "./server/export.ts";

/** A start failure an operator can act on (a read-only or full data dir); `main.ts` exits 1 with it. */
export class StartError extends Error {}

const ERRNO_TEXT: Record<string, string> = {
  EROFS: "is on a read-only file system",
  ENOSPC: "has no space left",
  EACCES: "is not writable (permission denied)",
  EPERM: "is not writable (operation not permitted)",
  ENOTDIR: "is not a directory",
  EEXIST: "is not a directory",
};

/**
 * Make sure the data dir exists and takes a write, before SQLite gets a chance to fail less clearly.
 * `Bun.write` makes the missing directories; Bun's file APIs rather than node:fs keep the idle agent small
 * (runtime/lazy-node-modules.ts).
 */
async function checkDataDir(dir: string): Promise<void> {
  const probe = `${dir}/.write-probe-${process.pid}`;
  try {
    await Bun.write(probe, new Uint8Array(64 * 1024));
    await Bun.file(probe).delete();
  } catch (err) {
    // The same failure again, if any; the first one is the one to report.
    await Bun.file(probe).delete().catch(() => {});
    const code = (err as NodeJS.ErrnoException).code ?? "";
    throw new StartError(`data dir '${dir}' ${ERRNO_TEXT[code] ?? `cannot be used (${(err as Error).message})`}`);
  }
}

/** What in the data dir only the agent's user may read: the dir itself and every SQLite file beside it. */
const DATABASES = ["events.db", "metrics.db", "work.db"];

/**
 * Owner-only modes for a data dir an older agent (or an operator's mkdir) left open: new files are created so
 * (the umask in `startAgent`); this corrects what already exists. Bun's stat is enough to look; node:fs is
 * loaded only when something must change (runtime/lazy-node-modules.ts: it costs the idle agent RSS).
 */
async function restrictDataDir(dir: string): Promise<void> {
  const paths = [dir, ...DATABASES.flatMap((db) => [db, `${db}-wal`, `${db}-shm`]).map((f) => `${dir}/${f}`)];
  for (const [i, path] of paths.entries()) {
    const st = await Bun.file(path).stat().catch(() => null);
    if (st && (st.mode & 0o077) !== 0) nodeFs().chmodSync(path, i === 0 ? 0o700 : 0o600);
  }
}

function openStores(config: AgentConfig) {
  let events: EventStore | null = null;
  try {
    events = new EventStore(`${config.dataDir}/events.db`, { nodeId: config.nodeId });
    const metrics = new MetricsStore(`${config.dataDir}/metrics.db`);
    return { events, metrics };
  } catch (err) {
    events?.close();
    throw new StartError(`cannot open the databases in '${config.dataDir}': ${(err as Error).message}`);
  }
}

function listenUrl(config: AgentConfig, port: number): string {
  if (config.publicUrl) return config.publicUrl;
  let host = config.host;
  if (host === "0.0.0.0" || host === "::") {
    const external = Object.values(nodeOs().networkInterfaces()).flat().find((i) =>
      i && i.family === "IPv4" && !i.internal
    );
    host = external?.address ?? "127.0.0.1";
  }
  return `${config.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

function capabilities(config: AgentConfig): AgentCapabilities {
  // The work side decides which mode tasks get (listed first), so it also says what the node offers.
  // `batchDispatch`: the server takes `POST /tasks/batch` (agent/server/app.ts).
  return { ...workCapabilities(config, process.env), batchDispatch: true, arch: process.arch, os: process.platform };
}

/** Builds the executor from parts the agent creates itself (the event store, the control-plane client). */
export type ExecutorFactory = (
  parts: { events: EventRecorder; controlPlane: ControlPlane },
) => TaskExecutor | Promise<TaskExecutor>;

export type RunningAgent = { url: string; port: number; events: EventStore; stop(): Promise<void> };

export async function startAgent(
  config: AgentConfig,
  opts: { executor?: TaskExecutor | ExecutorFactory | null } = {},
): Promise<RunningAgent> {
  const startedAt = Date.now();
  const uptimeAtStart = await kernelUptimeMs();
  // The data dir, the databases and their -wal/-shm are created owner-only: they hold the node's history and
  // every task's output. The umask is the agent's own only while it creates them; tasks keep the usual one.
  const umask = process.umask(0o077);
  let stores: ReturnType<typeof openStores>;
  try {
    await checkDataDir(config.dataDir);
    await sweepExportTemps(config.dataDir);
    stores = openStores(config);
  } finally {
    process.umask(umask);
  }
  const { events, metrics } = stores;
  await restrictDataDir(config.dataDir);
  const controlPlane = new ControlPlaneClient(config.controlPlaneUrl, config.nodeToken);
  let executor: TaskExecutor | null;
  try {
    executor = typeof opts.executor === "function"
      ? await opts.executor({ events, controlPlane })
      : opts.executor ?? null;
  } catch (err) {
    events.close();
    metrics.close();
    throw new StartError(`cannot start the task executor in '${config.dataDir}': ${(err as Error).message}`);
  }
  events.record({
    type: EVENT_TYPES.agentStart,
    message: `sam-agent ${SAM_VERSION} starting`,
    detail: { version: SAM_VERSION, pid: process.pid },
  });
  if (config.degraded) {
    events.record({ type: EVENT_TYPES.error, level: "error", message: `starting degraded: ${config.degraded}` });
  }

  let boot: BootTimeline | null = null;
  const app = createAgentApp({
    nodeId: config.nodeId,
    agentToken: config.agentToken,
    version: SAM_VERSION,
    startedAt,
    events,
    metrics,
    boot: () => boot,
    executor,
    exportDir: config.dataDir,
  });
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: config.host,
      port: config.port,
      fetch: app.fetch,
      tls: config.tls ? { cert: config.tls.cert, key: config.tls.key } : undefined,
    });
  } catch (err) {
    events.close();
    metrics.close();
    throw new StartError(`cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`);
  }
  const port = server.port!;
  const url = listenUrl(config, port);

  const monitor = new ResourceMonitor({
    store: metrics,
    events,
    intervalMs: config.metricsMs,
    dataDir: config.dataDir,
  });
  monitor.start();

  const prune = async () => {
    const cutoff = Date.now() - config.retentionMs;
    try {
      const removed = (await events.prune(cutoff)) + (await metrics.prune(cutoff));
      if (removed > 0) {
        events.record({
          type: "retention",
          message: `retention removed ${removed} rows older than ${new Date(cutoff).toISOString()}`,
        });
      }
    } catch (err) {
      events.record({
        type: EVENT_TYPES.error,
        level: "error",
        message: `retention failed: ${(err as Error).message}`,
      });
    }
  };
  void prune();
  const retentionTimer = setInterval(prune, Math.max(60_000, Math.min(3_600_000, config.retentionMs / 24)));

  const lifecycle = new AbortController();
  let heartbeats: { stop(): void } | null = null;

  const reporting = (async () => {
    boot = await readBootTimeline({
      source: config.bootSource,
      journalCommand: config.bootJournalCommand,
      syslogPath: config.bootSyslogPath,
      agentStartedAt: startedAt,
      kernelUptimeMs: uptimeAtStart,
      kernelBootId: await kernelBootId(),
    });
    // A restarted agent reads the same markers again: record them once per machine boot, keyed by the boot's
    // id rather than by comparing timestamps with the boot time (a clock step or an old journal fools that).
    const bootId = boot.bootId ?? null;
    for (const phase of boot.phases) {
      if (events.hasBootPhase(bootId, phase.name, phase.startedAt)) continue;
      events.record({
        type: EVENT_TYPES.bootPhase,
        at: phase.startedAt,
        level: phase.status === "ok" ? "info" : "warn",
        message: `boot phase ${phase.name}: ${phase.status}${
          phase.durationMs === null ? "" : ` in ${phase.durationMs} ms`
        }`,
        detail: { ...phase, bootId },
      });
    }
    const ready: AgentReady = {
      nodeId: config.nodeId,
      version: SAM_VERSION,
      url,
      tlsFingerprint: config.tls?.fingerprint ?? null,
      tlsCertificate: config.tls ? firstCertificatePem(config.tls.cert) : null,
      bootTimeline: boot,
      capabilities: capabilities(config),
      startedAt,
      ...(config.degraded ? { degraded: config.degraded } : {}),
    };
    const accepted = await sendReady({
      controlPlane,
      events,
      ready,
      initialBackoffMs: Math.min(1_000, config.heartbeatMs),
      maxBackoffMs: config.heartbeatMs,
      signal: lifecycle.signal,
    });
    if (!accepted) return;
    heartbeats = startHeartbeats({
      controlPlane,
      events,
      nodeId: config.nodeId,
      startedAt,
      latestMetrics: () => monitor.latest(),
      executor,
      problems: events.recentProblems,
      intervalMs: config.heartbeatMs,
    });
  })();

  let stopping: Promise<void> | null = null;
  const stop = () =>
    stopping ??= (async () => {
      lifecycle.abort();
      heartbeats?.stop();
      monitor.stop();
      clearInterval(retentionTimer);
      await reporting.catch(() => {});
      try {
        await executor?.shutdown();
      } catch (err) {
        events.record({
          type: EVENT_TYPES.error,
          level: "error",
          message: `executor shutdown failed: ${(err as Error).message}`,
        });
      }
      events.record({
        type: EVENT_TYPES.agentStop,
        message: "sam-agent stopping",
        detail: { uptimeMs: Date.now() - startedAt },
      });
      await server.stop();
      events.close();
      metrics.close();
    })();

  return { url, port, events, stop };
}
