/** A resource chart as server-side SVG: a 0–100 % line with its points, no script, works offline. */
import { formatPercent, formatTime } from "../format.ts";
import { chartSegments, type Point } from "../series.ts";

const W = 600;
const H = 140;

export function LineChart(props: { name: string; title: string; points: Point[]; from: number; to: number; latest: string }) {
  const segments = chartSegments(props.points, { width: W, height: H, from: props.from, to: props.to, yMax: 100 });
  const count = segments.reduce((n, s) => n + s.length, 0);
  return (
    <figure class="chart" data-chart={props.name} data-points={count}>
      <figcaption>
        <strong>{props.title}</strong> <span class="muted">{props.latest}</span>
      </figcaption>
      {count === 0 ? (
        <p class="muted chart-empty">No samples in this window.</p>
      ) : (
        <svg viewBox={`-34 -8 ${W + 42} ${H + 26}`} role="img" aria-label={`${props.title}, ${count} points`}>
          {[0, 50, 100].map((y) => {
            const py = H - (y / 100) * H;
            return (
              <g class="grid">
                <line x1="0" x2={W} y1={py} y2={py} />
                <text x="-6" y={py + 4} text-anchor="end">{`${y}%`}</text>
              </g>
            );
          })}
          <text class="axis" x="0" y={H + 16}>{formatTime(props.from)}</text>
          <text class="axis" x={W} y={H + 16} text-anchor="end">{formatTime(props.to)}</text>
          {segments.map((s) => <polyline class="line" points={s.map((p) => `${p.x},${p.y}`).join(" ")} />)}
          {segments.flat().map((p) => (
            <circle class="pt" cx={p.x} cy={p.y} r="2">
              <title>{formatPercent(p.value)}</title>
            </circle>
          ))}
        </svg>
      )}
    </figure>
  );
}
