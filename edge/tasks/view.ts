/** A task as the API shows it (`TaskView`): transitions, where the time went, never the repo credential or a URL's userinfo. */
import type { TaskView } from "../../shared/wire/api.ts";
import { displayRepoUrl, type TaskStatus } from "../../shared/wire/task.ts";
import type { TaskRecord } from "./store.ts";

type Transition = { status: TaskStatus; at: number; message: string };

export function taskView(task: TaskRecord, transitions: Transition[], now = Date.now()): TaskView {
  const first = (...statuses: TaskStatus[]) => transitions.find((t) => statuses.includes(t.status))?.at ?? null;
  const end = first("succeeded", "failed", "cancelled");
  const span = (start: number | null, ...next: (number | null)[]) => {
    if (start === null) return null;
    const stop = next.find((x) => x !== null) ?? end ?? now;
    return Math.max(0, stop - start);
  };
  const prov = first("provisioning");
  const wait = first("waiting_for_agent");
  const disp = first("dispatched");
  const run = first("running");
  return {
    id: task.id,
    status: task.status,
    prompt: task.prompt,
    repo: task.repo
      ? {
        url: displayRepoUrl(task.repo.url),
        branch: task.repo.branch,
        ...(task.repo.push ? { push: task.repo.push } : {}),
      }
      : null,
    agent: task.agent,
    model: task.model,
    labels: task.labels,
    keyId: task.keyId,
    nodeId: task.nodeId,
    createdAt: task.createdAt,
    updatedAt: task.updatedAt,
    transitions: transitions.map((t) => ({ status: t.status, at: t.at, reason: t.message })),
    phases: {
      queued: span(task.createdAt, prov, wait, disp),
      provisioning: span(prov, wait, disp),
      boot: span(wait, disp),
      dispatch: span(disp, run),
      run: span(run),
    },
    result: task.result,
    error: task.error,
  };
}
