/** A resource chart as server-side SVG: a 0–100 % line with its points, no script, works offline. */
import { formatPercent, formatTime } from "../format.ts";
import { chartSegments, type Point } from "../series.ts";

const W = 600;
const H = 180;

export function LineChart(
  props: { name: string; title: string; points: Point[]; from: number; to: number; latest: string },
) {
  const segments = chartSegments(props.points, { width: W, height: H, from: props.from, to: props.to, yMax: 100 });
  const count = segments.reduce((n, s) => n + s.length, 0);
  return (
    <figure class="chart" data-chart={props.name} data-points={count}>
      <figcaption>
        <strong>{props.title}</strong> <span class="muted">{props.latest}</span>
      </figcaption>
      {count === 0 ? <p class="muted chart-empty">No samples in this window.</p> : (
        // Labels live in HTML around the SVG, so they keep their size however wide the chart is drawn.
        <div class="plot">
          <span class="y y100">100%</span>
          <span class="y y50">50%</span>
          <span class="y y0">0%</span>
          <svg
            viewBox={`-4 -4 ${W + 8} ${H + 8}`}
            role="img"
            aria-label={`${props.title}, ${count} points, 0 to 100 %`}
          >
            {[0, 25, 50, 75, 100].map((y) => (
              <line class="grid" x1="0" x2={W} y1={H - (y / 100) * H} y2={H - (y / 100) * H} />
            ))}
            {segments.map((s) => <polyline class="line" points={s.map((p) => `${p.x},${p.y}`).join(" ")} />)}
            {segments.flat().map((p) => (
              <circle class="pt" cx={p.x} cy={p.y} r="2">
                <title>{formatPercent(p.value)}</title>
              </circle>
            ))}
          </svg>
          <span class="x">
            <span>{formatTime(props.from)}</span>
            <span>{formatTime(props.to)}</span>
          </span>
        </div>
      )}
    </figure>
  );
}
