/** How the admin pages write durations, ages, sizes and times for a human. */

export function formatDuration(ms: number | null): string {
  if (ms === null) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  const rs = Math.round(s - m * 60);
  if (m < 60) return `${m}m ${String(rs).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m - h * 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** "3m 05s ago"; "—" when it never happened. */
export function formatAge(at: number | null, now: number): string {
  if (at === null) return "—";
  return `${formatDuration(Math.max(0, now - at))} ago`;
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatPercent(p: number | null): string {
  return p === null ? "—" : `${p.toFixed(p < 10 ? 1 : 0)} %`;
}

/** UTC, to the second: operators compare it with journald and provider consoles. */
export function formatTime(at: number): string {
  return new Date(at).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}
