/**
 * Human durations for configuration: "500ms", "90s", "15m", "2h", "7d", or a bare integer meaning seconds.
 * Parsing is strict so `SAM_AGENT_READY_TIMEOUT=15 min` fails loudly instead of becoming 15 ms.
 */
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/;

/** Returns milliseconds, or null when the text is not a duration. */
export function parseDuration(text: string): number | null {
  const m = PATTERN.exec(text.trim());
  if (!m) return null;
  const unit = (m[2] ?? "s") as keyof typeof UNIT_MS;
  const ms = Number(m[1]) * UNIT_MS[unit];
  return Number.isFinite(ms) ? Math.round(ms) : null;
}

/** The shortest exact rendering: 900000 → "15m", 90000 → "90s", 1500 → "1500ms". */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1_000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
