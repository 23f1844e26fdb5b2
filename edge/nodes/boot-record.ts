/**
 * A node's boot record on the edge, from two sources: the boot script's live progress markers (posted as each
 * phase starts and ends, best effort) and the agent's own timeline from journald (its ready callback).
 * Until the agent reports, the waterfall is drawn from the live markers; once it reports, its timeline is the
 * record and live markers only complete phases it saw still running (the pull overlaps the agent's start).
 * After a reboot the first boot's timeline stays: a later boot's report never replaces it with an empty one.
 */
import { type BootMarker, buildBootTimeline } from "../../agent/boot/markers.ts";
import type { BootProgress, BootTimeline } from "../../shared/wire/boot.ts";

/** Markers kept per node: a boot writes two per phase, a dozen phases; room for retries and a reboot. */
export const MAX_PROGRESS_MARKERS = 256;

export function progressMarker(p: BootProgress): BootMarker {
  return { at: p.at, kind: p.kind === "START" ? "start" : p.kind === "END" ? "end" : "failed", name: p.phase };
}

/** The boot script retries a report it cannot confirm, so the same marker may arrive twice: keep one. */
function distinct(markers: BootMarker[]): BootMarker[] {
  const seen = new Set<string>();
  return markers.filter((m) => {
    const key = `${m.at} ${m.kind} ${m.name}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** The timeline the live markers alone describe (`source: "live"`), as of the latest marker. */
export function liveTimeline(all: BootMarker[]): BootTimeline {
  const markers = distinct(all);
  const latest = markers.reduce((max, m) => Math.max(max, m.at), 0);
  return buildBootTimeline({ source: "live", markers, kernelUptimeMsAtAgentStart: null, agentStartedAt: latest });
}

/**
 * Live END/FAILED markers complete the phases the agent's timeline still shows running, and phases the
 * script started after the agent read its journal (the waits at the script's end) are added from them.
 */
export function completeWithLive(timeline: BootTimeline, markers: BootMarker[]): BootTimeline {
  const known = new Set(timeline.phases.map((p) => p.name));
  const later = markers.some((m) => !known.has(m.name))
    ? liveTimeline(markers).phases.filter((p) => !known.has(p.name))
    : [];
  if (!timeline.phases.some((p) => p.status === "unterminated") && later.length === 0) return timeline;
  const phases = timeline.phases.map((phase) => {
    if (phase.status !== "unterminated") return phase;
    const end = markers.filter((m) =>
      m.name === phase.name && m.kind !== "start" && m.at >= phase.startedAt
    ).sort((a, b) => a.at - b.at)[0];
    if (!end) {
      return phase;
    }
    return {
      ...phase,
      endedAt: end.at,
      durationMs: end.at - phase.startedAt,
      status: end.kind === "end" ? "ok" as const : "failed" as const,
    };
  });
  return { ...timeline, phases: [...phases, ...later].sort((a, b) => a.startedAt - b.startedAt) };
}

/** What the timeline on record becomes when progress arrives. */
export function withProgress(stored: BootTimeline | null, markers: BootMarker[]): BootTimeline {
  if (stored === null || stored.source === "live") return liveTimeline(markers);
  return completeWithLive(stored, markers);
}

/**
 * What the timeline on record becomes when an agent reports ready, and whether this report comes from a
 * later machine boot than the record's (a reboot, to be shown as one).
 */
export function withReady(
  stored: BootTimeline | null,
  reported: BootTimeline,
  markers: BootMarker[],
): { timeline: BootTimeline; reboot: boolean } {
  const machine = reported.machineBootId ?? null;
  const agentRecord = stored !== null && stored.source !== "live" && stored.phases.length > 0;
  // A machine boot other than the one on record (or than the phases' own, when there is no record yet).
  const reboot = machine !== null &&
    (agentRecord
      ? machine !== (stored.machineBootId ?? stored.bootId)
      : reported.bootId != null && machine !== reported.bootId);
  const laterBoot = agentRecord && stored.bootId != null && reported.bootId != null &&
    stored.bootId !== reported.bootId;
  if (agentRecord && (reported.phases.length === 0 || laterBoot)) {
    return { timeline: { ...stored, machineBootId: machine ?? stored.machineBootId ?? null }, reboot };
  }
  return { timeline: completeWithLive(reported, markers), reboot };
}
