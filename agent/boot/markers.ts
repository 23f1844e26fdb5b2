/**
 * The boot timeline's pure part: `sam-boot` markers (`PHASE START: x`, `PHASE END: x`, `PHASE FAILED: x`
 * written by cloud-init with `logger -t sam-boot`) parsed from journald JSON or syslog text, and paired
 * into phases. No I/O here, so the cloud-init side can feed it exactly what its script emits.
 */
import type { BootPhase, BootTimeline } from "../../shared/wire/boot.ts";

export type BootMarker = { at: number; kind: "start" | "end" | "failed"; name: string };

const TAG = "sam-boot";
const MARKER = /^PHASE (START|END|FAILED):\s*(.+?)\s*$/;
const MAX_NAME = 128;
const MAX_PHASES = 256;
/** journald writes a boot id as 32 hex digits; the kernel's `boot_id` file as a dashed UUID. */
const BOOT_ID = /^[0-9a-fA-F-]{1,64}$/;

/** A boot id as the agent keys boot records by: lower-case hex without dashes, or null when unusable. */
export function normaliseBootId(raw: string | null | undefined): string | null {
  const id = raw?.trim() ?? "";
  return BOOT_ID.test(id) ? id.replaceAll("-", "").toLowerCase() : null;
}

function markerOf(at: number, message: string): BootMarker | null {
  const m = MARKER.exec(message.trim());
  if (!m || !Number.isFinite(at) || at < 0) return null;
  return { at, kind: m[1]!.toLowerCase() as BootMarker["kind"], name: m[2]!.slice(0, MAX_NAME) };
}

/** journald stores a non-UTF-8 MESSAGE as an array of bytes. */
function messageText(raw: unknown): string | null {
  if (typeof raw === "string") return raw;
  if (Array.isArray(raw) && raw.every((b) => typeof b === "number")) {
    return new TextDecoder().decode(new Uint8Array(raw));
  }
  return null;
}

/** `journalctl -t sam-boot -o json` output: one JSON object per line; other lines and tags are skipped. */
export function parseJournalJson(text: string): BootMarker[] {
  const out: BootMarker[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim().startsWith("{")) continue;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line);
    } catch {
      continue;
    }
    if (entry.SYSLOG_IDENTIFIER !== undefined && entry.SYSLOG_IDENTIFIER !== TAG) continue;
    const message = messageText(entry.MESSAGE);
    const micros = typeof entry.__REALTIME_TIMESTAMP === "string" ? Number(entry.__REALTIME_TIMESTAMP) : NaN;
    if (message === null || !Number.isFinite(micros)) continue;
    const marker = markerOf(Math.floor(micros / 1000), message);
    if (marker) out.push(marker);
  }
  return out;
}

/**
 * The markers of the FIRST machine boot that wrote any, from journald JSON spanning every boot
 * (`journalctl -t sam-boot` without `-b`): cloud-init's runcmd runs once per instance, so after a reboot the
 * current boot has no markers and the node's timeline is still the first boot's. Entries without `_BOOT_ID`
 * count as one boot (`bootId` null).
 */
export function firstBootMarkers(text: string): { bootId: string | null; markers: BootMarker[] } {
  const boots = new Map<string, { first: number; lines: string[] }>();
  for (const line of text.split("\n")) {
    if (!line.trim().startsWith("{")) continue;
    let id = "";
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry.SYSLOG_IDENTIFIER !== undefined && entry.SYSLOG_IDENTIFIER !== TAG) continue;
      if (typeof entry._BOOT_ID === "string" && BOOT_ID.test(entry._BOOT_ID)) id = entry._BOOT_ID;
      const micros = typeof entry.__REALTIME_TIMESTAMP === "string" ? Number(entry.__REALTIME_TIMESTAMP) : NaN;
      const boot = boots.get(id) ?? { first: Number.isFinite(micros) ? micros : Infinity, lines: [] };
      boot.lines.push(line);
      boots.set(id, boot);
    } catch {
      continue;
    }
  }
  let chosen: { id: string; markers: BootMarker[]; first: number } | null = null;
  for (const [id, boot] of boots) {
    const markers = parseJournalJson(boot.lines.join("\n"));
    if (markers.length > 0 && (chosen === null || boot.first < chosen.first)) {
      chosen = { id, markers, first: boot.first };
    }
  }
  return chosen ? { bootId: chosen.id || null, markers: chosen.markers } : { bootId: null, markers: [] };
}

/** The `_BOOT_ID` of the last `sam-boot` entry in journald JSON output: the boot those markers belong to. */
export function journalBootId(text: string): string | null {
  let id: string | null = null;
  for (const line of text.split("\n")) {
    if (!line.includes("_BOOT_ID")) continue;
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry.SYSLOG_IDENTIFIER !== undefined && entry.SYSLOG_IDENTIFIER !== TAG) continue;
      if (typeof entry._BOOT_ID === "string" && BOOT_ID.test(entry._BOOT_ID)) id = entry._BOOT_ID;
    } catch {
      continue;
    }
  }
  return id;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
// `Nov 24 02:31:38 host sam-boot[123]: PHASE START: x` (local time, no year) ...
const TRADITIONAL = /^([A-Z][a-z]{2})\s+(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) \S+ ([^\s:[]+)(?:\[\d+\])?: (.*)$/;
// ... or `2026-11-24T02:31:38.123456+00:00 host sam-boot[123]: PHASE START: x` (RFC 3339, rsyslog's newer default).
const ISO = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2}) \S+ ([^\s:[]+)(?:\[\d+\])?: (.*)$/;

/**
 * `/var/log/syslog` lines from `sam-boot`. Traditional timestamps carry no year or zone: they are read as
 * local time in `year` (the agent runs on the machine that wrote them).
 */
export function parseSyslog(text: string, year: number): BootMarker[] {
  const out: BootMarker[] = [];
  for (const line of text.split("\n")) {
    let at: number;
    let tag: string;
    let message: string;
    const iso = ISO.exec(line);
    const trad = iso ? null : TRADITIONAL.exec(line);
    if (iso) {
      const millis = (iso[2] ?? "").padEnd(3, "0").slice(0, 3);
      at = Date.parse(`${iso[1]}.${millis}${iso[3]}`);
      tag = iso[4]!;
      message = iso[5]!;
    } else if (trad) {
      const month = MONTHS.indexOf(trad[1]!);
      if (month < 0) continue;
      at = new Date(year, month, Number(trad[2]), Number(trad[3]), Number(trad[4]), Number(trad[5])).getTime();
      tag = trad[6]!;
      message = trad[7]!;
    } else {
      continue;
    }
    if (tag !== TAG) continue;
    const marker = markerOf(at, message);
    if (marker) out.push(marker);
  }
  return out;
}

export type BootTimelineInput = {
  source: BootTimeline["source"];
  markers: BootMarker[];
  kernelUptimeMsAtAgentStart: number | null;
  agentStartedAt: number;
  /** The machine boot the markers belong to (journald's `_BOOT_ID`, else the kernel's `boot_id`). */
  bootId?: string | null;
  /** The boot the agent runs in; another than `bootId` after a reboot. */
  machineBootId?: string | null;
};

/**
 * Pair markers into phases, in time order. A START with no END is `unterminated` (also when the same
 * phase starts again before it ended); FAILED ends a phase as `failed`; an END with no START is ignored.
 */
export function buildBootTimeline(input: BootTimelineInput): BootTimeline {
  const markers = input.markers.map((m, i) => ({ m, i })).sort((a, b) => a.m.at - b.m.at || a.i - b.i).map((x) => x.m);
  const phases: BootPhase[] = [];
  const open = new Map<string, BootPhase>();
  for (const marker of markers) {
    const current = open.get(marker.name);
    if (marker.kind === "start") {
      const phase: BootPhase = {
        name: marker.name,
        startedAt: marker.at,
        endedAt: null,
        durationMs: null,
        status: "unterminated",
      };
      phases.push(phase);
      open.set(marker.name, phase);
    } else if (current) {
      current.endedAt = marker.at;
      current.durationMs = Math.max(0, marker.at - current.startedAt);
      current.status = marker.kind === "end" ? "ok" : "failed";
      open.delete(marker.name);
    } else if (marker.kind === "failed") {
      phases.push({ name: marker.name, startedAt: marker.at, endedAt: marker.at, durationMs: 0, status: "failed" });
    }
  }
  return {
    source: input.source,
    kernelUptimeMsAtAgentStart: input.kernelUptimeMsAtAgentStart,
    agentStartedAt: input.agentStartedAt,
    bootId: normaliseBootId(input.bootId),
    ...(input.machineBootId === undefined ? {} : { machineBootId: normaliseBootId(input.machineBootId) }),
    phases: phases.slice(0, MAX_PHASES),
  };
}
