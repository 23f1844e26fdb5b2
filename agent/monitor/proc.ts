/**
 * Pure parsers of the /proc files the resource monitor reads. They take text and return numbers, so they
 * are tested on captured samples, including kernels and containers that leave fields out.
 */

/** Cumulative CPU time in jiffies from the aggregate `cpu` line of /proc/stat. */
export type CpuTimes = { total: number; idle: number; user: number; system: number; iowait: number; steal: number };

const CPU_FIELDS = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"] as const;

export function parseProcStat(text: string): CpuTimes | null {
  const line = text.split("\n").find((l) => /^cpu\s/.test(l));
  if (!line) return null;
  const nums = line.trim().split(/\s+/).slice(1).map(Number);
  if (nums.length < 4 || nums.some((n) => !Number.isFinite(n))) return null;
  // guest and guest_nice (fields 9 and 10) are already counted in user and nice: leave them out of the total.
  const f = Object.fromEntries(CPU_FIELDS.map((name, i) => [name, nums[i] ?? 0])) as Record<
    (typeof CPU_FIELDS)[number],
    number
  >;
  const total = CPU_FIELDS.reduce((sum, name) => sum + f[name], 0);
  return {
    total,
    idle: f.idle,
    user: f.user + f.nice,
    system: f.system + f.irq + f.softirq,
    iowait: f.iowait,
    steal: f.steal,
  };
}

/** Busy share of the CPU between two readings, 0..100; null when no time passed (or the counters reset). */
export function cpuPercent(prev: CpuTimes, next: CpuTimes): number | null {
  const total = next.total - prev.total;
  const idle = next.idle + next.iowait - (prev.idle + prev.iowait);
  if (total <= 0 || idle < 0) return null;
  const pct = ((total - idle) / total) * 100;
  return Math.min(100, Math.max(0, Math.round(pct * 100) / 100));
}

export type LoadAverages = { load1: number; load5: number; load15: number };

export function parseLoadavg(text: string): LoadAverages | null {
  const [a, b, c] = text.trim().split(/\s+/).map(Number);
  if (![a, b, c].every((n) => n !== undefined && Number.isFinite(n))) return null;
  return { load1: a!, load5: b!, load15: c! };
}

export type Memory = { memTotalBytes: number; memUsedBytes: number; swapTotalBytes: number; swapUsedBytes: number };

/**
 * Used memory is `MemTotal − MemAvailable`. Kernels before 3.14 (and some containers) have no
 * MemAvailable: then `MemFree + Buffers + Cached` is the closest estimate.
 */
export function parseMeminfo(text: string): Memory | null {
  const kb = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([\w()]+):\s+(\d+)(?:\s+kB)?\s*$/.exec(line.trim());
    if (m) kb.set(m[1]!, Number(m[2]) * 1024);
  }
  const total = kb.get("MemTotal");
  if (total === undefined) return null;
  const available = kb.get("MemAvailable") ??
    (kb.get("MemFree") ?? 0) + (kb.get("Buffers") ?? 0) + (kb.get("Cached") ?? 0);
  const swapTotal = kb.get("SwapTotal") ?? 0;
  const swapFree = kb.get("SwapFree") ?? swapTotal;
  return {
    memTotalBytes: total,
    memUsedBytes: Math.max(0, total - Math.min(available, total)),
    swapTotalBytes: swapTotal,
    swapUsedBytes: Math.max(0, swapTotal - swapFree),
  };
}

export type NetBytes = { rxBytes: number; txBytes: number };

/** Bytes received and sent over all interfaces but loopback, from /proc/net/dev. */
export function parseNetDev(text: string): NetBytes | null {
  let rx = 0;
  let tx = 0;
  let seen = false;
  for (const line of text.split("\n")) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === "lo") continue;
    const cols = m[2]!.trim().split(/\s+/).map(Number);
    if (cols.length < 9 || !Number.isFinite(cols[0]) || !Number.isFinite(cols[8])) continue;
    rx += cols[0]!;
    tx += cols[8]!;
    seen = true;
  }
  return seen ? { rxBytes: rx, txBytes: tx } : null;
}

/** Seconds since kernel boot (first number of /proc/uptime), as ms. */
export function parseUptime(text: string): number | null {
  const first = Number(text.trim().split(/\s+/)[0]);
  return Number.isFinite(first) && first >= 0 ? Math.round(first * 1000) : null;
}
