/**
 * The resource monitor (docs/agent.md): a sample at start and then every interval, from
 * /proc (CPU delta, load, memory, network) and statfs (the root filesystem and, when it is another one,
 * the data dir's), stored in metrics.db and kept in memory for the heartbeat.
 */
import type { MetricsSample } from "../../shared/wire/metrics.ts";
import type { EventRecorder } from "../contracts.ts";
import { nodeFs } from "../runtime/lazy-node-modules.ts";
import { cpuPercent, type CpuTimes, parseLoadavg, parseMeminfo, parseNetDev, parseProcStat } from "./proc.ts";
import type { MetricsStore } from "./store.ts";

export type ResourceMonitorOptions = {
  store: MetricsStore;
  events: EventRecorder;
  intervalMs: number;
  dataDir: string;
  /** `/proc` unless a test points elsewhere. */
  procRoot?: string;
  now?: () => number;
};

/** Bun's file read, not node:fs: a sample is taken at start and every minute (runtime/lazy-node-modules.ts). */
async function readOr(path: string): Promise<string> {
  try {
    return await Bun.file(path).text();
  } catch {
    return "";
  }
}

function diskOf(path: string) {
  const s = nodeFs().statfsSync(path);
  const totalBytes = s.blocks * s.bsize;
  const freeBytes = s.bavail * s.bsize;
  // Used is what is not free for any user (blocks − bfree); free is what an unprivileged writer can still use.
  return { path, totalBytes, usedBytes: (s.blocks - s.bfree) * s.bsize, freeBytes };
}

export class ResourceMonitor {
  private readonly opts: ResourceMonitorOptions;
  private prevCpu: CpuTimes | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private last: MetricsSample | null = null;
  private failing = false;
  private stopped = false;

  constructor(opts: ResourceMonitorOptions) {
    this.opts = opts;
  }

  /** Take one sample now (without storing it). */
  async sample(): Promise<MetricsSample> {
    const proc = this.opts.procRoot ?? "/proc";
    const [statText, loadText, memText, netText, rootStat, dataStat] = await Promise.all([
      readOr(`${proc}/stat`),
      readOr(`${proc}/loadavg`),
      readOr(`${proc}/meminfo`),
      readOr(`${proc}/net/dev`),
      Bun.file("/").stat(),
      Bun.file(this.opts.dataDir).stat(),
    ]);
    const cpu = parseProcStat(statText);
    const load = parseLoadavg(loadText) ?? { load1: 0, load5: 0, load15: 0 };
    const mem = parseMeminfo(memText) ?? { memTotalBytes: 0, memUsedBytes: 0, swapTotalBytes: 0, swapUsedBytes: 0 };
    const net = parseNetDev(netText);
    const pct = cpu && this.prevCpu ? cpuPercent(this.prevCpu, cpu) : null;
    if (cpu) this.prevCpu = cpu;
    const sameFs = rootStat.dev === dataStat.dev;
    return {
      at: (this.opts.now ?? Date.now)(),
      cpuPercent: pct,
      ...load,
      ...mem,
      disk: diskOf("/"),
      dataDisk: sameFs ? null : diskOf(this.opts.dataDir),
      netRxBytes: net?.rxBytes ?? null,
      netTxBytes: net?.txBytes ?? null,
    };
  }

  /** Sample, store and remember; a failure is recorded, never thrown (the agent keeps running). */
  async tick(): Promise<MetricsSample | null> {
    try {
      const s = await this.sample();
      // The reads are asynchronous: a sample that finishes after stop() must not reach a closed store.
      if (this.stopped) return null;
      this.opts.store.add(s);
      this.last = s;
      this.failing = false;
      return s;
    } catch (err) {
      if (!this.failing) {
        this.opts.events.record({
          type: "error",
          level: "error",
          message: `resource monitor: ${(err as Error).message}`,
        });
      }
      this.failing = true;
      return null;
    }
  }

  latest(): MetricsSample | null {
    return this.last;
  }

  start(): void {
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
