/** The boot waterfall the admin page draws (edge/admin/timeline.ts), as text for the log and as an SVG file. */
import type { NodeView } from "../shared/wire/api.ts";
import { bootWaterfall } from "../edge/admin/timeline.ts";

const secs = (ms: number | null) => (ms === null ? "  …  " : `${(ms / 1000).toFixed(1).padStart(5)}s`);

export function waterfallText(node: NodeView, width = 60): string {
  const w = bootWaterfall(node);
  if (!w) return "(nothing reported)";
  const label = Math.max(...w.rows.map((r) => r.label.length));
  return w.rows.map((r) => {
    const from = Math.round((r.left / 100) * width);
    const len = Math.max(1, Math.round((r.width / 100) * width));
    const mark = r.status === "failed" ? "x" : r.status === "unterminated" ? "?" : r.kind === "phase" ? "#" : "=";
    return `${r.label.padEnd(label)} ${secs(r.offsetMs)} ${secs(r.durationMs)} |${" ".repeat(from)}${
      mark.repeat(Math.min(len, width - from))
    }`;
  }).join("\n");
}

export function waterfallSvg(node: NodeView, title: string): string {
  const w = bootWaterfall(node);
  const rows = w?.rows ?? [];
  const rowH = 18, labelW = 230, barW = 620, top = 40;
  const height = top + rows.length * rowH + 30;
  const colour = (
    s: string,
    kind: string,
  ) => (s === "failed" ? "#d62728" : s === "unterminated" ? "#ff7f0e" : kind === "phase" ? "#1f77b4" : "#7f7f7f");
  const esc = (t: string) => t.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]!);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${
      labelW + barW + 90
    }" height="${height}" font-family="sans-serif" font-size="12">`,
    `<text x="8" y="20" font-weight="bold">${esc(title)}</text>`,
    ...(w?.ticks ?? []).map((t) =>
      `<line x1="${labelW + (t.left / 100) * barW}" y1="${top - 6}" x2="${labelW + (t.left / 100) * barW}" y2="${
        height - 24
      }" stroke="#ddd"/><text x="${labelW + (t.left / 100) * barW}" y="${height - 10}" text-anchor="middle">${
        t.offsetMs / 1000
      }s</text>`
    ),
    ...rows.map((r, i) => {
      const y = top + i * rowH;
      return `<text x="8" y="${y + 12}">${esc(r.label)}</text>` +
        `<rect x="${labelW + (r.left / 100) * barW}" y="${y + 2}" width="${
          Math.max(1, (r.width / 100) * barW)
        }" height="${rowH - 5}" fill="${colour(r.status, r.kind)}"/>` +
        `<text x="${labelW + barW + 6}" y="${y + 12}">${
          r.durationMs === null ? r.status : `${(r.durationMs / 1000).toFixed(1)}s`
        }</text>`;
    }),
    "</svg>",
  ];
  return parts.join("\n");
}
