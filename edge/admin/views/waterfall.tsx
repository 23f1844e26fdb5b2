/**
 * The boot waterfall: one row per provider span and `sam-boot` phase, each bar placed on a shared time axis
 * with CSS percentages, so widths are proportional to durations at any screen width.
 */
import { formatDuration, formatTime } from "../format.ts";
import type { Waterfall } from "../timeline.ts";

const STATUS_NOTE = { ok: "", failed: "failed", unterminated: "unterminated: no END marker" } as const;

export function WaterfallChart({ waterfall }: { waterfall: Waterfall | null }) {
  if (waterfall === null) return <p class="muted">No boot timeline yet: the agent has not reported ready.</p>;
  return (
    <div class="waterfall" data-span-ms={waterfall.spanMs}>
      <div class="wf-row wf-axis" aria-hidden="true">
        <span class="wf-label">from {formatTime(waterfall.originAt)}</span>
        <div class="wf-track">
          {waterfall.ticks.map((t) => (
            <span class={t.left > 92 ? "wf-tick end" : "wf-tick"} style={`left:${t.left}%`}>
              +{formatDuration(t.offsetMs)}
            </span>
          ))}
        </div>
      </div>
      {waterfall.rows.map((r) => (
        <div
          class={`wf-row wf-${r.kind} wf-${r.status}`}
          data-phase={r.label}
          data-status={r.status}
          data-kind={r.kind}
        >
          <span class="wf-label">
            <span class="wf-name">{r.label}</span>{" "}
            <span class="wf-dur">{r.durationMs === null ? "…" : formatDuration(r.durationMs)}</span>
            {r.status !== "ok" && <span class={`wf-mark wf-mark-${r.status}`}>⚠ {STATUS_NOTE[r.status]}</span>}
          </span>
          <div class="wf-track">
            {waterfall.ticks.map((t) => <span class="wf-grid" style={`left:${t.left}%`}></span>)}
            <span
              class="wf-bar"
              style={`left:${r.left}%;width:${r.width}%`}
              title={`${r.label}: +${formatDuration(r.offsetMs)}, ${
                r.durationMs === null ? "never ended" : formatDuration(r.durationMs)
              }`}
            >
            </span>
          </div>
        </div>
      ))}
    </div>
  );
}
