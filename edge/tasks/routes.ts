/**
 * `/api/tasks*`: submit (API key; `Idempotency-Key` honoured), list, read, follow the events as SSE, cancel.
 * A key sees only its own tasks; the admin sees all.
 */
import { Hono, type MiddlewareHandler } from "hono";
import { type SSEStreamingApi, streamSSE } from "hono/streaming";
import * as v from "valibot";
import { HttpError } from "../../shared/errors.ts";
import { parseOrThrow, readJsonBody } from "../../shared/validate.ts";
import { isTerminal, TaskStatus, TaskSubmission } from "../../shared/wire/task.ts";
import type { Authenticate, Caller } from "../auth/caller.ts";
import { catalogueModel } from "../inference/models.ts";
import { type CallerEnv, guard } from "../auth/guard.ts";
import type { Runner } from "../runner/runner.ts";
import type { Wakeups } from "./wakeups.ts";
import type { Timeouts } from "../../shared/timeouts.ts";
import type { TaskLimits } from "./limits.ts";
import { submittedTransitions, type TaskRecord, type TaskStore } from "./store.ts";
import { taskView } from "./view.ts";

export type TaskRouteDeps = {
  authenticate: Authenticate;
  tasks: TaskStore;
  runner: Runner;
  wakeups: Wakeups;
  timeouts: Timeouts;
  limits: TaskLimits;
};

const IdempotencyKey = v.pipe(
  v.string(),
  v.regex(/^[\x21-\x7e]{1,200}$/, "Idempotency-Key must be 1-200 printable characters"),
);
const ListQuery = v.strictObject({
  status: v.optional(TaskStatus),
  cursor: v.optional(v.pipe(v.string(), v.regex(/^\d{1,15}$/, "cursor must be a nextCursor from a previous page"))),
  limit: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\d{1,4}$/, "limit must be a number"),
      v.transform(Number),
      v.minValue(1),
      v.maxValue(500),
    ),
    "50",
  ),
});
const EventsQuery = v.strictObject({
  follow: v.optional(v.picklist(["0", "1", "true", "false"])),
  after: v.optional(v.pipe(v.string(), v.regex(/^-?\d{1,15}$/, "after must be an event id"))),
  cursor: v.optional(v.pipe(v.string(), v.regex(/^-?\d{1,15}$/, "cursor must be a nextCursor from a previous page"))),
  limit: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\d{1,4}$/, "limit must be a number"),
      v.transform(Number),
      v.minValue(1),
      v.maxValue(1000),
    ),
    "500",
  ),
});

/** The built-in agent works only through tool calls: a model known not to make them would fail every task. */
function refuseModelWithoutTools(submission: TaskSubmission): void {
  if (submission.agent.type !== "builtin" || submission.model === undefined) return;
  if (catalogueModel(submission.model)?.tools !== false) return;
  throw new HttpError(
    400,
    `the model '${submission.model}' cannot call tools, and the built-in agent works through tool calls: ` +
      'choose a model whose capabilities.tools is true (GET /v1/models), or run your own agent with agent.type "command"',
    { code: "model_without_tools" },
  );
}

/** How often an SSE follower re-reads the database when no in-process wake-up came (another instance wrote). */
const FOLLOW_POLL_MS = 250;

export function taskRoutes(d: TaskRouteDeps): Hono<CallerEnv> {
  const app = new Hono<CallerEnv>();

  async function visibleTask(caller: Caller, id: string): Promise<TaskRecord> {
    const task = await d.tasks.get(id);
    if (!task) throw new HttpError(404, `no task ${id}`, { code: "task_not_found" });
    if (caller.kind === "key" && task.keyId !== caller.keyId) {
      throw new HttpError(403, `task ${id} belongs to another API key`, { code: "forbidden" });
    }
    return task;
  }

  const limitReads: MiddlewareHandler<CallerEnv> = async (c, next) => {
    d.limits.read(c.var.caller);
    await next();
  };

  const viewOf = async (task: TaskRecord) => taskView(task, await d.tasks.statusEvents(task.id));

  app.post("/", guard(d.authenticate, "key", "admin"), async (c) => {
    const caller = c.var.caller;
    if (caller.kind !== "key") {
      throw new HttpError(403, "tasks are submitted with an API key (the admin creates one with POST /api/keys)", {
        code: "key_required",
      });
    }
    d.limits.submission(caller);
    const header = c.req.header("Idempotency-Key");
    const idem = header === undefined ? null : parseOrThrow(IdempotencyKey, header);
    const submission = parseOrThrow(TaskSubmission, await readJsonBody(c.req.raw));
    refuseModelWithoutTools(submission);
    const { task, created } = await d.runner.submit(caller.keyId, submission, idem);
    if (!created) return c.json(await viewOf(task), 200);
    // Answered once durably queued (or dispatched); the agent call or the placement runs off this request's path.
    return c.json(taskView(task, submittedTransitions(task)), 201);
  });

  app.get("/", guard(d.authenticate, "key", "admin"), limitReads, async (c) => {
    const caller = c.var.caller;
    const q = parseOrThrow(ListQuery, c.req.query());
    const page = await d.tasks.list({
      keyId: caller.kind === "key" ? caller.keyId : null,
      status: q.status ?? null,
      cursor: q.cursor === undefined ? null : Number(q.cursor),
      limit: q.limit,
    });
    return c.json({ data: await Promise.all(page.tasks.map(viewOf)), nextCursor: page.nextCursor });
  });

  app.get("/:id", guard(d.authenticate, "key", "admin"), limitReads, async (c) => {
    return c.json(await viewOf(await visibleTask(c.var.caller, c.req.param("id"))));
  });

  app.post("/:id/cancel", guard(d.authenticate, "key", "admin"), limitReads, async (c) => {
    const task = await visibleTask(c.var.caller, c.req.param("id"));
    if (isTerminal(task.status)) {
      throw new HttpError(409, `task ${task.id} has already ended (${task.status})`, { code: "task_ended" });
    }
    await d.runner.cancel(task);
    return c.json(await viewOf((await d.tasks.get(task.id))!));
  });

  app.get("/:id/events", guard(d.authenticate, "key", "admin"), limitReads, async (c) => {
    const task = await visibleTask(c.var.caller, c.req.param("id"));
    const q = parseOrThrow(EventsQuery, c.req.query());
    const lastEventId = c.req.header("Last-Event-ID");
    let after = Number(q.after ?? q.cursor ?? (lastEventId && /^\d+$/.test(lastEventId) ? lastEventId : -1));
    if (q.follow !== "1" && q.follow !== "true") {
      const data = await d.tasks.events(task.id, after, q.limit + 1);
      const page = data.slice(0, q.limit);
      return c.json({ data: page, nextCursor: data.length > q.limit ? String(page[page.length - 1]!.id) : null });
    }
    const release = d.limits.follow(c.var.caller);
    return streamSSE(c, async (stream) => {
      const aborted = new AbortController();
      stream.onAbort(() => aborted.abort());
      try {
        await follow(stream, aborted.signal);
      } finally {
        release();
      }
    });

    async function follow(stream: SSEStreamingApi, signal: AbortSignal): Promise<void> {
      while (!signal.aborted) {
        // Read the status before the events: a terminal status seen here means every event up to it is readable.
        const current = await d.tasks.get(task.id);
        const events = await d.tasks.events(task.id, after, 500);
        for (const e of events) {
          await stream.writeSSE({ event: e.type, id: String(e.id), data: JSON.stringify(e) });
          after = e.id;
        }
        if (events.length === 500) continue;
        if (current && isTerminal(current.status)) {
          const end = {
            status: current.status,
            error: current.error,
            ...(current.result?.delivery ? { delivery: current.result.delivery } : {}),
          };
          await stream.writeSSE({ event: "end", data: JSON.stringify(end) });
          return;
        }
        await d.wakeups.wait(task.id, FOLLOW_POLL_MS, signal);
      }
    }
  });

  return app;
}
