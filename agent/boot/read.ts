/**
 * Reading the boot timeline on the node: journald first (`journalctl -t sam-boot -o json`, every boot: the
 * first boot that wrote markers is the node's), else the syslog file, plus the kernel uptime at agent start. Never throws and never hangs the start: a missing
 * journalctl, an unreadable log or a slow command just yields fewer phases.
 */
import type { BootTimeline } from "../../shared/wire/boot.ts";
import { parseUptime } from "../monitor/proc.ts";
import { type BootMarker, buildBootTimeline, firstBootMarkers, parseSyslog } from "./markers.ts";

export const DEFAULT_JOURNAL_COMMAND = ["journalctl", "-t", "sam-boot", "-o", "json", "--no-pager"];
export const DEFAULT_SYSLOG_PATH = "/var/log/syslog";

export type BootSource = "auto" | "journald" | "syslog" | "none";

export type ReadBootOptions = {
  source: BootSource;
  journalCommand: string[];
  syslogPath: string;
  agentStartedAt: number;
  /** Kernel uptime when the agent started, read by the caller as early as possible. */
  kernelUptimeMs: number | null;
  /** This machine's boot id (`kernelBootId()`): the boot of syslog markers, and of a journal without `_BOOT_ID`. */
  kernelBootId?: string | null;
  timeoutMs?: number;
};

/** Run journalctl (or the configured command); its stdout, or null when it is missing, fails or runs past the timeout. */
async function runJournal(command: string[], timeoutMs: number): Promise<string | null> {
  try {
    const proc = Bun.spawn(command, { stdout: "pipe", stderr: "ignore", stdin: "ignore" });
    const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
    const [text, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    clearTimeout(timer);
    return code === 0 ? text : null;
  } catch {
    return null;
  }
}

// Bun's file reads, not node:fs: these run at every start (runtime/lazy-node-modules.ts).
async function readSyslog(path: string, year: number): Promise<BootMarker[] | null> {
  try {
    return parseSyslog(await Bun.file(path).text(), year);
  } catch {
    return null;
  }
}

export async function kernelUptimeMs(procRoot = "/proc"): Promise<number | null> {
  try {
    return parseUptime(await Bun.file(`${procRoot}/uptime`).text());
  } catch {
    return null;
  }
}

/** The kernel's id of the running boot (a new one at every boot), or null where it cannot be read. */
export async function kernelBootId(procRoot = "/proc"): Promise<string | null> {
  try {
    return (await Bun.file(`${procRoot}/sys/kernel/random/boot_id`).text()).trim() || null;
  } catch {
    return null;
  }
}

export async function readBootTimeline(opts: ReadBootOptions): Promise<BootTimeline> {
  const base = { kernelUptimeMsAtAgentStart: opts.kernelUptimeMs, agentStartedAt: opts.agentStartedAt };
  const build = (source: BootTimeline["source"], markers: BootMarker[], bootId = opts.kernelBootId) =>
    buildBootTimeline({ ...base, source, markers, bootId, machineBootId: opts.kernelBootId ?? null });
  if (opts.source === "none") return build("none", []);

  let journalRan = false;
  if (opts.source === "auto" || opts.source === "journald") {
    const text = await runJournal(opts.journalCommand, opts.timeoutMs ?? 5_000);
    if (text !== null) {
      journalRan = true;
      const { bootId, markers } = firstBootMarkers(text);
      if (markers.length > 0 || opts.source === "journald") {
        return build("journald", markers, bootId ?? opts.kernelBootId);
      }
    } else if (opts.source === "journald") {
      return build("journald", []);
    }
  }
  // Syslog: asked for, or journald gave nothing (not installed, or not persistent on this image).
  const markers = await readSyslog(opts.syslogPath, new Date(opts.agentStartedAt).getFullYear());
  if (markers !== null && (markers.length > 0 || !journalRan)) return build("syslog", markers);
  return build(journalRan ? "journald" : "none", []);
}
