/**
 * The boot waterfall's geometry: provider spans (create call → server running → agent ready), the machine's
 * own boot up to the agent, and every `sam-boot` phase, placed on one time axis as percentages so a bar's
 * width is proportional to its duration. Pure data; the view only draws it.
 */
import type { BootPhase } from "../../shared/wire/boot.ts";
import type { NodeView } from "../../shared/wire/api.ts";

export type WaterfallRow = {
  label: string;
  kind: "provider" | "machine" | "phase";
  /** Offset of the start from the axis origin, ms. */
  offsetMs: number;
  /** Null when the phase never ended (an unterminated phase runs to the end of the axis). */
  durationMs: number | null;
  status: BootPhase["status"];
  /** Position on the axis in percent of its span. */
  left: number;
  width: number;
};

export type Waterfall = {
  originAt: number;
  spanMs: number;
  rows: WaterfallRow[];
  ticks: { offsetMs: number; left: number }[];
};

/** The provider milestones the waterfall draws spans between, in the order they happen. */
const PROVIDER_MILESTONES = ["create_call", "server_running", "agent_ready"] as const;
const MILESTONE_LABEL: Record<(typeof PROVIDER_MILESTONES)[number], string> = {
  create_call: "create call",
  server_running: "server running",
  agent_ready: "agent ready",
};

type Span = Omit<WaterfallRow, "offsetMs" | "left" | "width"> & { startAt: number; endAt: number };

function providerSpans(node: NodeView): Span[] {
  const at = new Map(node.providerTimings.map((t) => [t.name, t.at]));
  if (!at.has("agent_ready") && node.readyAt !== null) at.set("agent_ready", node.readyAt);
  const present = PROVIDER_MILESTONES.filter((m) => at.has(m));
  const spans: Span[] = [];
  for (let i = 1; i < present.length; i++) {
    const from = present[i - 1]!;
    const to = present[i]!;
    const startAt = at.get(from)!;
    const endAt = Math.max(startAt, at.get(to)!);
    spans.push({
      label: `${MILESTONE_LABEL[from]} → ${MILESTONE_LABEL[to]}`,
      kind: "provider",
      startAt,
      endAt,
      durationMs: endAt - startAt,
      status: "ok",
    });
  }
  return spans;
}

/** Builds the waterfall, or null when the node has reported nothing to draw yet. */
export function bootWaterfall(node: NodeView): Waterfall | null {
  const spans = providerSpans(node);
  const boot = node.bootTimeline;
  if (boot?.kernelUptimeMsAtAgentStart != null) {
    const startAt = boot.agentStartedAt - boot.kernelUptimeMsAtAgentStart;
    spans.push({
      label: "kernel boot → agent start",
      kind: "machine",
      startAt,
      endAt: boot.agentStartedAt,
      durationMs: boot.kernelUptimeMsAtAgentStart,
      status: "ok",
    });
  }
  const phases = [...(boot?.phases ?? [])].sort((a, b) => a.startedAt - b.startedAt);
  if (spans.length === 0 && phases.length === 0) return null;

  const knownEnds = [
    ...spans.map((s) => s.endAt),
    ...phases.map((p) => p.endedAt ?? (p.durationMs !== null ? p.startedAt + p.durationMs : p.startedAt)),
    ...(boot ? [boot.agentStartedAt] : []),
  ];
  const originAt = Math.min(...spans.map((s) => s.startAt), ...phases.map((p) => p.startedAt));
  const endAt = Math.max(...knownEnds);
  for (const p of phases) {
    const ended = p.endedAt ?? (p.durationMs !== null ? p.startedAt + p.durationMs : null);
    spans.push({
      label: p.name,
      kind: "phase",
      startAt: p.startedAt,
      // An unterminated phase was still open when the agent read the markers: draw it to the axis end.
      endAt: ended ?? endAt,
      durationMs: ended === null ? null : ended - p.startedAt,
      status: p.status,
    });
  }
  const spanMs = Math.max(endAt - originAt, 1);
  const pct = (ms: number) => Math.min(100, Math.max(0, (ms / spanMs) * 100));
  const rows = spans.map(({ startAt, endAt: end, ...rest }) => ({
    ...rest,
    offsetMs: startAt - originAt,
    left: pct(startAt - originAt),
    width: pct(end - startAt),
  }));
  return { originAt, spanMs, rows, ticks: axisTicks(spanMs) };
}

const TICK_STEPS_MS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200].map((s) => s * 1000);

/** At most six round ticks (1 s, 2 s, 5 s … 2 h apart) from 0 to the span. */
export function axisTicks(spanMs: number): { offsetMs: number; left: number }[] {
  const step = TICK_STEPS_MS.find((s) => spanMs / s <= 6) ?? Math.ceil(spanMs / 6 / 3_600_000) * 3_600_000;
  const ticks = [];
  for (let t = 0; t <= spanMs; t += step) ticks.push({ offsetMs: t, left: (t / spanMs) * 100 });
  return ticks;
}
