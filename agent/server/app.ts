/**
 * The agent's HTTP surface (docs/protocol.md § Edge → agent) as a plain Hono app over the agent's parts.
 * `/health` is open; every other route needs the agent token (auth.ts: Hono's bearer-auth, constant-time).
 */
// `hono/quick` (a linear router for the agent's ten routes): Hono's default builds its RegExp router on the
// first request, ≈ 0.4 MiB of the idle agent's RSS (docs/benchmarks.md § The VM agent).
import { Hono } from "hono/quick";
import { bodyLimit } from "hono/body-limit";
import { HttpError } from "../../shared/errors.ts";
import { TASK_DISPATCH_BATCH } from "../../shared/wire/agent.ts";
import { parseOrThrow, readJsonBody } from "../../shared/validate.ts";
import type { BootTimeline } from "../../shared/wire/boot.ts";
import type { TaskExecutor } from "../contracts.ts";
import type { EventStore } from "../events/store.ts";
import type { MetricsStore } from "../monitor/store.ts";
import { agentAuth } from "./auth.ts";
import { errorAnswer, errorRenderer, renderNotFound } from "./errors.ts";
import { type Connection, exportResponse } from "./export.ts";
import { parseEventsQuery, parseMetricsQuery } from "./query.ts";

export type AgentAppDeps = {
  nodeId: string;
  agentToken: string;
  version: string;
  startedAt: number;
  events: EventStore;
  metrics: MetricsStore;
  /** The boot timeline once read (null while the agent is still reading it). */
  boot: () => BootTimeline | null;
  /** Runs dispatched tasks; without one the task routes answer 503. */
  executor?: TaskExecutor | null;
  /** Where export snapshots are written (the data dir: same disk as the databases). */
  exportDir: string;
  now?: () => number;
};

/** The request's TCP ports, when Bun.serve runs the app (Hono passes the server as `env`). */
function connectionOf(req: Request, env: unknown): Connection | null {
  const server = env as { requestIP?(r: Request): { port: number } | null; port?: number } | undefined;
  const client = server?.requestIP?.(req);
  const serverPort = Number(server?.port);
  return client && serverPort > 0 ? { serverPort, clientPort: client.port } : null;
}

/**
 * Header bytes a request may carry (names and values). Bun's own parser refuses beyond its limit with an
 * empty body; the binary raises that limit (scripts/build-agent.ts) so this check answers first, in the JSON
 * error shape.
 */
export const MAX_HEADER_BYTES = 16 * 1024;

export function createAgentApp(deps: AgentAppDeps): Hono {
  const now = deps.now ?? Date.now;
  const app = new Hono();
  app.onError(errorRenderer(deps.events));
  const answerError = errorAnswer(deps.events);
  app.notFound(renderNotFound);

  app.use("*", async function headerLimit(c, next) {
    let bytes = 0;
    c.req.raw.headers.forEach((value, name) => {
      bytes += name.length + value.length + 4;
    });
    if (bytes > MAX_HEADER_BYTES) {
      throw new HttpError(431, `request headers are ${bytes} bytes; at most ${MAX_HEADER_BYTES} are accepted`, {
        code: "headers_too_large",
      });
    }
    await next();
  });

  app.get(
    "/health",
    (c) => c.json({ ok: true, version: deps.version, uptimeMs: now() - deps.startedAt, nodeId: deps.nodeId }),
  );

  app.use("*", agentAuth(deps.agentToken));

  app.get("/events", (c) => {
    const q = parseEventsQuery(c.req.query());
    return c.json(deps.events.query({
      since: q.since,
      until: q.until,
      type: q.type,
      taskId: q.taskId,
      level: q.level,
      limit: q.limit,
      afterId: q.cursor,
    }));
  });

  app.get("/metrics", (c) => c.json({ samples: deps.metrics.list(parseMetricsQuery(c.req.query())) }));

  app.get("/boot", (c) => {
    const timeline = deps.boot();
    if (!timeline) {
      throw new HttpError(503, "the boot timeline is still being read; retry in a second", {
        code: "boot_pending",
        headers: { "Retry-After": "1" },
      });
    }
    return c.json(timeline);
  });

  for (const kind of ["events", "metrics"] as const) {
    app.get(`/${kind}/export`, (c) =>
      exportResponse({
        kind,
        source: kind === "events" ? deps.events : deps.metrics,
        dir: deps.exportDir,
        nodeId: deps.nodeId,
        now: now(),
        connection: connectionOf(c.req.raw, c.env),
      }));
  }

  const executor = (): TaskExecutor => {
    if (!deps.executor) throw new HttpError(503, "this agent has no task executor", { code: "no_executor" });
    return deps.executor;
  };

  app.post("/tasks", bodyLimit({ maxSize: 2 * 1024 * 1024 }), async (c) => {
    const ex = executor();
    // The task schemas (66 of the ≈ 150 the bundle builds) are built on the first dispatch rather than at
    // start, like the executor (agent/work/index.ts: loadTaskExecutor).
    const { TaskDispatch } = await import("../../shared/wire/task.ts");
    const dispatch = parseOrThrow(TaskDispatch, await readJsonBody(c.req.raw));
    return c.json(await ex.start(dispatch), 202);
  });

  // A burst's dispatches to this node in one call: each task taken or refused on its own, in order, with the
  // status and body `POST /tasks` would have answered (shared/wire/task.ts TaskDispatchBatch).
  app.post("/tasks/batch", bodyLimit({ maxSize: TASK_DISPATCH_BATCH.maxBytes }), async (c) => {
    const ex = executor();
    const { TaskDispatch, TaskDispatchBatch } = await import("../../shared/wire/task.ts");
    const batch = parseOrThrow(TaskDispatchBatch, await readJsonBody(c.req.raw));
    const results: { status: number; body: unknown }[] = [];
    for (const task of batch.tasks) {
      try {
        results.push({ status: 202, body: await ex.start(parseOrThrow(TaskDispatch, task)) });
      } catch (err) {
        // Answered as the app answers a failed `POST /tasks` (an unexpected error recorded, a bare 500).
        const { status, body } = answerError(err as Error, c);
        results.push({ status, body });
      }
    }
    return c.json({ results }, 200);
  });

  app.get("/tasks/:id", (c) => {
    const state = executor().status(c.req.param("id"));
    if (!state) throw new HttpError(404, `no task ${c.req.param("id")} on this node`, { code: "task_not_found" });
    return c.json(state);
  });

  app.post("/tasks/:id/cancel", async (c) => c.json({ cancelled: await executor().cancel(c.req.param("id")) }));

  return app;
}
