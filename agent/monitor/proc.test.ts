import { describe, expect, test } from "bun:test";
import { cpuPercent, parseLoadavg, parseMeminfo, parseNetDev, parseProcStat, parseUptime } from "./proc.ts";

// Captured on a 2-core x64 VM (kernel 6.1).
const STAT_A = `cpu  13905 0 8759 145883 741 0 178 1144 0 0
cpu0 6012 0 3391 75250 89 0 29 554 0 0
cpu1 7893 0 5368 70632 651 0 149 590 0 0
intr 1234 0 0
ctxt 98765
`;
const STAT_B = `cpu  14005 0 8809 146733 741 0 178 1144 0 0
cpu0 6062 0 3416 75675 89 0 29 554 0 0
`;

const MEMINFO = `MemTotal:       24684092 kB
MemFree:        23464812 kB
MemAvailable:   24253544 kB
Buffers:           14700 kB
Cached:           859272 kB
SwapCached:            0 kB
Active(anon):       1552 kB
SwapTotal:       2097148 kB
SwapFree:        1048576 kB
HugePages_Total:       0
`;

const NETDEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:   26980     167    0    0    0     0          0         0    26980     167    0    0    0     0       0          0
  eth0: 859299951   19402    0    0    0     0          0         0  1074935   11425    0    0    0     0       0          0
docker0:     100       1    0    0    0     0          0         0      200       2    0    0    0     0       0          0
`;

describe("/proc parsers", () => {
  test("CPU busy share from two /proc/stat readings", () => {
    const a = parseProcStat(STAT_A)!;
    const b = parseProcStat(STAT_B)!;
    expect(a.total).toBe(13905 + 8759 + 145883 + 741 + 178 + 1144);
    // 1000 jiffies passed: 100 user + 50 system busy, 850 idle.
    expect(cpuPercent(a, b)).toBe(15);
  });

  test("an old kernel's cpu line with only four fields still parses", () => {
    const old = parseProcStat("cpu  100 0 50 850\n")!;
    expect(old).toEqual({ total: 1000, idle: 850, user: 100, system: 50, iowait: 0, steal: 0 });
  });

  test("no time passed, or counters that went backwards, give null rather than a wrong figure", () => {
    const a = parseProcStat(STAT_A)!;
    expect(cpuPercent(a, a)).toBeNull();
    expect(cpuPercent(parseProcStat(STAT_B)!, a)).toBeNull();
  });

  test("garbage /proc/stat gives null", () => {
    expect(parseProcStat("")).toBeNull();
    expect(parseProcStat("cpu0 1 2 3 4\n")).toBeNull();
    expect(parseProcStat("cpu  a b c d\n")).toBeNull();
  });

  test("load averages", () => {
    expect(parseLoadavg("0.52 0.45 0.25 1/92 8732\n")).toEqual({ load1: 0.52, load5: 0.45, load15: 0.25 });
    expect(parseLoadavg("0.52\n")).toBeNull();
  });

  test("memory used is MemTotal − MemAvailable, with swap", () => {
    expect(parseMeminfo(MEMINFO)).toEqual({
      memTotalBytes: 24684092 * 1024,
      memUsedBytes: (24684092 - 24253544) * 1024,
      swapTotalBytes: 2097148 * 1024,
      swapUsedBytes: (2097148 - 1048576) * 1024,
    });
  });

  test("meminfo without MemAvailable or swap lines (old kernel, container) estimates instead", () => {
    const m = parseMeminfo("MemTotal: 1000 kB\nMemFree: 400 kB\nBuffers: 100 kB\nCached: 200 kB\n")!;
    expect(m.memUsedBytes).toBe(300 * 1024);
    expect(m.swapTotalBytes).toBe(0);
    expect(m.swapUsedBytes).toBe(0);
    expect(parseMeminfo("MemFree: 400 kB\n")).toBeNull();
  });

  test("network bytes sum every interface but loopback", () => {
    expect(parseNetDev(NETDEV)).toEqual({ rxBytes: 859299951 + 100, txBytes: 1074935 + 200 });
    expect(parseNetDev(NETDEV.split("\n").slice(0, 3).join("\n"))).toBeNull();
    expect(parseNetDev("  eth0: 1 2 3\n")).toBeNull();
  });

  test("uptime", () => {
    expect(parseUptime("857.65 1458.83\n")).toBe(857_650);
    expect(parseUptime("x")).toBeNull();
  });
});
