/**
 * A task's page: state, where its time went, its result, and its log — rendered as far as it goes now, then
 * followed live over SSE (`live-log.js`) until the task ends.
 */
import type { TaskEventView, TaskView } from "../../../shared/wire/api.ts";
import { isTerminal, type TaskDelivery } from "../../../shared/wire/task.ts";
import { formatDuration, formatTime } from "../format.ts";
import { Badge, Layout } from "./layout.tsx";
import { PhaseBar, PhaseLegend } from "./tasks.tsx";

export function TaskPage({ base, task, events }: { base: string; task: TaskView; events: TaskEventView[] }) {
  const live = !isTerminal(task.status);
  const taskUrl = `${base}/tasks/${encodeURIComponent(task.id)}`;
  const lastId = events.at(-1)?.id ?? -1;
  return (
    <Layout title={`Task ${task.id}`} base={base} scripts={live ? ["live-log.js"] : []}>
      <h1>
        Task <code>{task.id}</code>{" "}
        <span id="task-status">
          <Badge value={task.status} />
        </span>
      </h1>
      {task.error && <p class="notice error" role="alert">{task.error}</p>}
      <dl class="facts">
        <dt>Prompt</dt>
        <dd class="prompt">{task.prompt}</dd>
        <dt>Repository</dt>
        <dd>{task.repo ? `${task.repo.url}${task.repo.branch ? ` @ ${task.repo.branch}` : ""}` : "—"}</dd>
        {task.repo?.push && (
          <>
            <dt>Delivery</dt>
            <dd>
              to a new branch {task.repo.push.branch ?? `sam/${task.id}`}
              {task.repo.push.pullRequest ? ", with a pull request" : ""}
            </dd>
          </>
        )}
        <dt>Agent</dt>
        <dd>
          {task.agent.type === "builtin" ? "built-in" : <code>{task.agent.command}</code>}
          {task.model ? `, model ${task.model}` : ""}
        </dd>
        <dt>Node</dt>
        <dd>{task.nodeId ? <a href={`${base}/nodes/${encodeURIComponent(task.nodeId)}`}>{task.nodeId}</a> : "—"}</dd>
        <dt>Submitted</dt>
        <dd>{formatTime(task.createdAt)}</dd>
      </dl>

      <section>
        <h2>Where the time went</h2>
        <PhaseBar phases={task.phases} />
        <PhaseLegend phases={task.phases} />
        <details>
          <summary>Transitions</summary>
          <ol class="transitions">
            {task.transitions.map((t) => (
              <li>
                {formatTime(t.at)} <Badge value={t.status} />
                {t.reason ? ` — ${t.reason}` : ""}
              </li>
            ))}
          </ol>
        </details>
      </section>

      {task.result && (
        <section id="result">
          <h2>Result</h2>
          <p>
            <Badge value={task.result.status} /> exit code {task.result.exitCode ?? "—"}, finished{" "}
            {formatTime(task.result.finishedAt)}
          </p>
          {task.result.summary && <pre class="box">{task.result.summary}</pre>}
          {task.result.error && <pre class="box error">{task.result.error}</pre>}
          {task.result.delivery && <DeliveryFacts delivery={task.result.delivery} />}
          {task.result.diffStat && <pre class="box">{task.result.diffStat}</pre>}
          {(task.result.steps ?? []).length > 0 && (
            <ul>{task.result.steps!.map((s) => <li>{s.name}: {formatDuration(s.durationMs)}</li>)}</ul>
          )}
        </section>
      )}

      <section>
        <h2>Log {live && <span class="muted" id="log-state">following live…</span>}</h2>
        <ol class="log" id="log" data-stream={live ? `${taskUrl}/events/stream` : undefined} data-last-id={lastId}>
          {events.map((e) => <LogLine event={e} />)}
        </ol>
      </section>
    </Layout>
  );
}

/** A URL the forge or the remote reported, linked only when it is http(s) (never `javascript:` on the admin page). */
const webLink = (url: string | undefined) => (url && /^https?:\/\//i.test(url) ? url : undefined);

/** Where the work went: the branch and pull request as links, or why it was not delivered. */
function DeliveryFacts({ delivery }: { delivery: TaskDelivery }) {
  const pr = delivery.pullRequest;
  return (
    <dl class="facts" id="delivery">
      <dt>Delivery</dt>
      <dd>
        <Badge value={delivery.status === "failed" ? "not_delivered" : delivery.status} />
        {delivery.reason ? ` ${delivery.reason}` : ""}
      </dd>
      {delivery.branch && (
        <>
          <dt>Branch</dt>
          <dd>
            {webLink(delivery.branchUrl)
              ? <a href={webLink(delivery.branchUrl)}>{delivery.branch}</a>
              : <code>{delivery.branch}</code>}
            {delivery.commit
              ? (
                <>
                  at <code>{delivery.commit.slice(0, 12)}</code>
                </>
              )
              : ""}
          </dd>
        </>
      )}
      {pr && (
        <>
          <dt>Pull request</dt>
          <dd>
            {webLink(pr.url) ? <a href={webLink(pr.url)}>#{pr.number}</a> : `#${pr.number} ${pr.url}`}
            {pr.existing ? " (already open)" : ""}
          </dd>
        </>
      )}
    </dl>
  );
}

function LogLine({ event }: { event: TaskEventView }) {
  const stream = event.type === "status" ? "status" : (event.stream ?? "stdout");
  return (
    <li class={`log-${stream}`} data-id={event.id}>
      <time>{formatTime(event.at).slice(11)}</time>{" "}
      {event.type === "status" ? `→ ${event.status ?? ""} ${event.message}` : event.message}
    </li>
  );
}
