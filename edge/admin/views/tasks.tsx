/** The tasks list, and the bar that shows where one task's time went (queued → … → run). */
import type { TaskView } from "../../../shared/wire/api.ts";
import { isTerminal } from "../../../shared/wire/task.ts";
import { formatAge, formatDuration } from "../format.ts";
import { Badge, Layout } from "./layout.tsx";

const PHASES = ["queued", "provisioning", "boot", "dispatch", "run"] as const;

export function PhaseBar({ phases }: { phases: TaskView["phases"] }) {
  const total = PHASES.reduce((n, k) => n + (phases[k] ?? 0), 0);
  if (total === 0) return <span class="muted">—</span>;
  return (
    <span
      class="phasebar"
      role="img"
      aria-label={PHASES.filter((k) => phases[k] !== null).map((k) => `${k} ${formatDuration(phases[k])}`).join(", ")}
    >
      {PHASES.filter((k) => (phases[k] ?? 0) > 0).map((k) => (
        <span
          class={`ph ph-${k}`}
          data-phase={k}
          style={`width:${((phases[k] ?? 0) / total) * 100}%`}
          title={`${k}: ${formatDuration(phases[k])}`}
        >
        </span>
      ))}
    </span>
  );
}

export function PhaseLegend({ phases }: { phases: TaskView["phases"] }) {
  return (
    <ul class="legend">
      {PHASES.map((k) => (
        <li data-phase={k}>
          <span class={`swatch ph-${k}`}></span>
          {k} <strong>{formatDuration(phases[k])}</strong>
        </li>
      ))}
    </ul>
  );
}

export function TasksPage(
  { base, tasks, nextCursor, now }: { base: string; tasks: TaskView[]; nextCursor: string | null; now: number },
) {
  return (
    <Layout title="Tasks" base={base}>
      <h1>Tasks</h1>
      {tasks.length === 0 ? <p class="muted">No tasks yet.</p> : (
        <div class="scroll">
          <table class="list" id="tasks">
            <thead>
              <tr>
                <th>Task</th>
                <th>Status</th>
                <th>Prompt</th>
                <th>Node</th>
                <th>Submitted</th>
                <th>Where the time went</th>
              </tr>
            </thead>
            <tbody>
              {tasks.map((t) => (
                <tr data-task={t.id}>
                  <td>
                    <a href={`${base}/tasks/${encodeURIComponent(t.id)}`}>{t.id}</a>
                  </td>
                  <td>
                    <Badge value={t.status} />
                    {!isTerminal(t.status) && <span class="muted">live</span>}
                  </td>
                  <td class="prompt">{t.prompt.length > 80 ? `${t.prompt.slice(0, 80)}…` : t.prompt}</td>
                  <td>{t.nodeId ? <a href={`${base}/nodes/${encodeURIComponent(t.nodeId)}`}>{t.nodeId}</a> : "—"}</td>
                  <td class="nowrap">{formatAge(t.createdAt, now)}</td>
                  <td class="wide">
                    <PhaseBar phases={t.phases} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {nextCursor && (
        <p>
          <a href={`${base}/tasks?cursor=${encodeURIComponent(nextCursor)}`}>Next page →</a>
        </p>
      )}
    </Layout>
  );
}
