/**
 * A node's page: who it is, the last warnings and errors its heartbeats carried, its boot waterfall, resource
 * charts over a chosen window, its recent event log with filters, and the two diagnostics downloads. When the
 * agent cannot be reached the page says so plainly and still shows what the edge last knew — for a node that
 * died suddenly, its last warnings and errors are what is left.
 */
import type { NodeMetricsView, NodeProblemView, NodeView } from "../../../shared/wire/api.ts";
import type { NodeEvent } from "../../../shared/wire/events.ts";
import type { ApiResult } from "../api-client.ts";
import { formatAge, formatBytes, formatPercent, formatTime } from "../format.ts";
import { downsample, type MetricsWindow, SERIES, type SeriesName, WINDOWS } from "../series.ts";
import { bootWaterfall } from "../timeline.ts";
import { LineChart } from "./chart.tsx";
import { Badge, Layout } from "./layout.tsx";
import { WaterfallChart } from "./waterfall.tsx";

export type EventFilter = { level: string; type: string };

export type NodePageProps = {
  base: string;
  node: NodeView;
  window: MetricsWindow;
  metrics: ApiResult<NodeMetricsView>;
  events: ApiResult<{ data: NodeEvent[]; nextCursor: string | null }>;
  filter: EventFilter;
  now: number;
};

const MAX_POINTS = 240;

export function NodePage(p: NodePageProps) {
  const { base, node, now } = p;
  const nodeUrl = `${base}/nodes/${encodeURIComponent(node.id)}`;
  const unreachable = !p.metrics.ok && p.metrics.failure.status >= 500
    ? p.metrics.failure
    : !p.events.ok && p.events.failure.status >= 500
    ? p.events.failure
    : null;
  return (
    <Layout title={`Node ${node.id}`} base={base}>
      <h1>
        Node <code>{node.id}</code> <Badge value={node.status} /> <Badge value={node.health} />
      </h1>
      {unreachable && (
        <div class="notice error" role="alert" id="unreachable">
          <strong>Node unreachable.</strong> {unreachable.message}
          <br />
          <span>
            Last known: status {node.status}, health {node.health}, last heartbeat{" "}
            {formatAge(node.lastHeartbeatAt, now)}.
          </span>
        </div>
      )}
      {node.statusReason && <p class="notice">{node.statusReason}</p>}
      <dl class="facts">
        <dt>Provider</dt>
        <dd>{node.provider}{node.providerServerId ? ` #${node.providerServerId}` : ""}</dd>
        <dt>Address</dt>
        <dd>{node.ipv4 ?? "—"}</dd>
        <dt>Created</dt>
        <dd>{formatTime(node.createdAt)} ({formatAge(node.createdAt, now)})</dd>
        <dt>Ready</dt>
        <dd>{node.readyAt ? formatTime(node.readyAt) : "—"}</dd>
        <dt>Heartbeat</dt>
        <dd>{formatAge(node.lastHeartbeatAt, now)}</dd>
        <dt>Agent</dt>
        <dd>{node.agentVersion ?? "—"}</dd>
        <dt>Active tasks</dt>
        <dd>
          {node.activeTasks.length === 0
            ? "none"
            : node.activeTasks.map((t) => <a href={`${base}/tasks/${encodeURIComponent(t)}`}>{t}</a>)}
        </dd>
        {node.lastMetrics && (
          <>
            <dt>Last sample</dt>
            <dd>
              CPU {formatPercent(node.lastMetrics.cpuPercent)}, memory {formatBytes(node.lastMetrics.memUsedBytes)} /
              {" "}
              {formatBytes(node.lastMetrics.memTotalBytes)}, disk {formatBytes(node.lastMetrics.disk.usedBytes)} /{" "}
              {formatBytes(node.lastMetrics.disk.totalBytes)} ({formatAge(node.lastMetrics.at, now)})
            </dd>
          </>
        )}
      </dl>

      {node.recentProblems && (
        <section>
          <h2>Last warnings and errors</h2>
          <ProblemTable problems={node.recentProblems} base={base} />
        </section>
      )}

      <section>
        <h2>Boot timeline</h2>
        <WaterfallChart waterfall={bootWaterfall(node)} />
      </section>

      <section>
        <h2>Diagnostics</h2>
        <p class="actions">
          <a class="button" id="download-events" href={`${nodeUrl}/events.db`} download={`${node.id}-events.db`}>
            Download events DB
          </a>
          <a class="button" id="download-metrics" href={`${nodeUrl}/metrics.db`} download={`${node.id}-metrics.db`}>
            Download metrics DB
          </a>
        </p>
      </section>

      <section>
        <h2>Resources</h2>
        <p class="tabs" id="windows">
          {(Object.keys(WINDOWS) as MetricsWindow[]).map((w) => (
            <a
              href={`${nodeUrl}?window=${w}`}
              class={w === p.window ? "current" : ""}
              aria-current={w === p.window ? "page" : undefined}
            >
              {w}
            </a>
          ))}
        </p>
        {p.metrics.ok
          ? <Charts metrics={p.metrics.data} window={p.window} now={now} />
          : <p class="notice error">Metrics unavailable: {p.metrics.failure.message}</p>}
      </section>

      <section>
        <h2>Recent events</h2>
        <form method="get" action={nodeUrl} class="filters">
          <input type="hidden" name="window" value={p.window} />
          <label>
            Level{" "}
            <select name="level">
              {["", "debug", "info", "warn", "error"].map((l) => (
                <option value={l} selected={l === p.filter.level}>{l || "any"}</option>
              ))}
            </select>
          </label>
          <label>
            Type <input name="type" value={p.filter.type} placeholder="e.g. boot.phase" maxlength={64} />
          </label>
          <button type="submit">Filter</button>
        </form>
        {p.events.ok
          ? <EventTable events={p.events.data.data} />
          : <p class="notice error">Events unavailable: {p.events.failure.message}</p>}
      </section>
    </Layout>
  );
}

function Charts({ metrics, window, now }: { metrics: NodeMetricsView; window: MetricsWindow; now: number }) {
  const to = Math.max(now, ...metrics.samples.map((s) => s.at));
  const from = to - WINDOWS[window];
  const last = metrics.samples.at(-1);
  return (
    <div class="charts">
      {(Object.keys(SERIES) as SeriesName[]).map((name) => {
        const series = SERIES[name];
        const points = downsample(metrics.samples.map((s) => ({ at: s.at, value: series.value(s) })), MAX_POINTS);
        return (
          <LineChart
            name={name}
            title={series.title}
            points={points}
            from={from}
            to={to}
            latest={last ? `now ${formatPercent(series.value(last))}` : ""}
          />
        );
      })}
    </div>
  );
}

/** One row of a level/type/message table: the node's events, or the warnings and errors the edge kept. */
type LevelRow = { at: number; level: string; type: string; message: unknown };

function LevelTable({ id, rows }: { id: string; rows: LevelRow[] }) {
  return (
    <div class="scroll">
      <table class="list events" id={id}>
        <thead>
          <tr>
            <th>Time</th>
            <th>Level</th>
            <th>Type</th>
            <th>Message</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr class={`lvl-${r.level}`} data-level={r.level} data-type={r.type}>
              <td class="nowrap">{formatTime(r.at)}</td>
              <td>
                <Badge value={r.level} />
              </td>
              <td>
                <code>{r.type}</code>
              </td>
              <td>{r.message}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function EventTable({ events }: { events: NodeEvent[] }) {
  if (events.length === 0) return <p class="muted">No events match.</p>;
  return (
    <LevelTable
      id="events"
      rows={events.map((e) => ({
        ...e,
        message: <>{e.message}{e.taskId && <span class="muted">(task {e.taskId})</span>}</>,
      }))}
    />
  );
}

/** Newest first, as the edge kept them: they outlive the node, its event log does not. */
function ProblemTable({ problems, base }: { problems: NodeProblemView[]; base: string }) {
  if (problems.length === 0) return <p class="muted" id="problems">None reported by its heartbeats.</p>;
  return (
    <LevelTable
      id="problems"
      rows={problems.map((p) => ({
        ...p,
        message: (
          <>
            {p.message}
            {p.repeats > 0 && (
              <span class="muted">
                {" "}(×{p.repeats + 1}
                {p.lastAt === null ? "" : `, the last at ${formatTime(p.lastAt)}`})
              </span>
            )}
            {p.taskId && (
              <span class="muted">
                {" "}(task <a href={`${base}/tasks/${encodeURIComponent(p.taskId)}`}>{p.taskId}</a>)
              </span>
            )}
          </>
        ),
      }))}
    />
  );
}

/** What a download or a page says when the node's agent cannot be reached: the reason, and what we last knew. */
export function Unreachable(
  p: {
    base: string;
    node: NodeView | null;
    nodeId: string;
    failure: { status: number; message: string };
    what: string;
    now: number;
  },
) {
  return (
    <Layout title={`Node ${p.nodeId} unreachable`} base={p.base}>
      <h1>
        Node <code>{p.nodeId}</code> unreachable
      </h1>
      <div class="notice error" role="alert" id="unreachable">
        <strong>Could not fetch {p.what}.</strong> {p.failure.message}
        {p.node && (
          <>
            <br />
            <span>
              Last known: status {p.node.status}, health {p.node.health}, last heartbeat{" "}
              {formatAge(p.node.lastHeartbeatAt, p.now)}.
            </span>
          </>
        )}
      </div>
      <p>
        <a href={`${p.base}/nodes/${encodeURIComponent(p.nodeId)}`}>Back to the node</a>
      </p>
    </Layout>
  );
}
