/**
 * A small stand-in for the edge's JSON API (the routes the admin pages consume), serving seeded data in the
 * promised shapes. The in-process page tests use it for cases the real edge makes slow or awkward to stage
 * (a week of samples, a 504, pagination of shapes); the browser tests run against the real edge. It checks the admin bearer like the real one, serves
 * real SQLite files for the exports (bun:sqlite), answers 504 with the JSON error shape for an unreachable
 * node, and streams a task's events as SSE that the test can feed.
 */
import { Hono } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { streamSSE } from "hono/streaming";
import { errorBody } from "../../shared/errors.ts";
import type { NodeView, TaskEventView, TaskView } from "../../shared/wire/api.ts";
import { isTerminal } from "../../shared/wire/task.ts";
import { type MetricsWindow, WINDOWS } from "../admin/series.ts";
import { sqliteDownload, sqliteFile } from "./sqlite-file.ts";
import { seedNodeEvents, seedNodes, seedSamples, seedTaskEvents, seedTasks } from "./admin-seed.ts";

export const UNREACHABLE_NODE = "node-gone";
export const UNREACHABLE_MESSAGE = "agent at https://198.51.100.9:8443 did not answer within 10s";

export type FakeApi = {
  app: Hono;
  nodes: NodeView[];
  tasks: TaskView[];
  /** Appends to a task's log (and its SSE followers); a terminal status ends the stream. */
  pushTaskEvent(taskId: string, e: Omit<TaskEventView, "id">): void;
  /** The paths the admin pages called, to prove they went through the API. */
  calls: string[];
};

export function createFakeApi(adminToken: string, now = Date.now()): FakeApi {
  const nodes = seedNodes(now);
  const tasks = seedTasks(now);
  const taskEvents = new Map(tasks.map((t) => [t.id, seedTaskEvents(t)]));
  const followers = new Map<string, Set<() => void>>();
  const calls: string[] = [];
  const app = new Hono();

  app.use("*", async (c, next) => {
    calls.push(c.req.path + (new URL(c.req.url).search));
    await next();
  });
  app.use("/api/*", bearerAuth({ token: adminToken }));

  const unreachable = () =>
    new Response(JSON.stringify(errorBody(UNREACHABLE_MESSAGE, "upstream_error", "node_unreachable")), {
      status: 504,
      headers: { "Content-Type": "application/json" },
    });
  const notFound = (what: string) =>
    new Response(JSON.stringify(errorBody(`no ${what}`, "not_found_error", "not_found")), {
      status: 404,
      headers: { "Content-Type": "application/json" },
    });
  const nodeOf = (id: string) => nodes.find((n) => n.id === id);

  app.get("/api/nodes", (c) => c.json({ data: nodes, nextCursor: null }));
  app.get(
    "/api/nodes/:id",
    (c) => nodeOf(c.req.param("id")) ? c.json(nodeOf(c.req.param("id"))) : notFound(`node ${c.req.param("id")}`),
  );
  app.get("/api/nodes/:id/metrics", (c) => {
    const id = c.req.param("id");
    if (!nodeOf(id)) return notFound(`node ${id}`);
    if (id === UNREACHABLE_NODE) return unreachable();
    const window = (c.req.query("window") ?? "1h") as MetricsWindow;
    if (!(window in WINDOWS)) return c.json(errorBody("window must be 1h, 24h or 7d", "invalid_request_error"), 400);
    const samples = window === "1h"
      ? seedSamples(now, 60, 60_000)
      : seedSamples(now, window === "24h" ? 1440 : 2016, window === "24h" ? 60_000 : 300_000);
    return c.json({ nodeId: id, window, samples });
  });
  app.get("/api/nodes/:id/events", (c) => {
    const id = c.req.param("id");
    if (!nodeOf(id)) return notFound(`node ${id}`);
    if (id === UNREACHABLE_NODE) return unreachable();
    const { level, type } = c.req.query();
    const data = seedNodeEvents(now, id).filter((e) => (!level || e.level === level) && (!type || e.type === type));
    return c.json({ data, nextCursor: null });
  });
  for (const kind of ["events", "metrics"] as const) {
    app.get(`/api/nodes/:id/${kind}/export`, (c) => {
      const id = c.req.param("id");
      if (!nodeOf(id)) return notFound(`node ${id}`);
      if (id === UNREACHABLE_NODE) return unreachable();
      return sqliteDownload(sqliteFile(kind, 25), `${id}-${kind}.db`);
    });
  }

  app.get("/api/tasks", (c) => c.json({ data: tasks, nextCursor: null }));
  app.get("/api/tasks/:id", (c) => {
    const t = tasks.find((x) => x.id === c.req.param("id"));
    return t ? c.json(t) : notFound(`task ${c.req.param("id")}`);
  });
  app.get("/api/tasks/:id/events", (c) => {
    const id = c.req.param("id");
    const task = tasks.find((x) => x.id === id);
    if (!task) return notFound(`task ${id}`);
    if (c.req.query("follow") !== "1") return c.json({ data: taskEvents.get(id) ?? [], nextCursor: null });
    return streamSSE(c, async (stream) => {
      let sent = -1;
      const after = Number(c.req.header("Last-Event-ID") ?? -1);
      let wake: (() => void) | null = null;
      const listener = () => wake?.();
      followers.set(id, (followers.get(id) ?? new Set()).add(listener));
      stream.onAbort(() => {
        followers.get(id)?.delete(listener);
        wake?.();
      });
      try {
        while (!stream.aborted) {
          for (const e of taskEvents.get(id) ?? []) {
            if (e.id <= sent || e.id <= after) continue;
            sent = e.id;
            await stream.writeSSE({ event: e.type, id: String(e.id), data: JSON.stringify(e) });
          }
          if (isTerminal(task.status)) {
            await stream.writeSSE({ event: "end", data: JSON.stringify({ status: task.status }) });
            return;
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
      } finally {
        followers.get(id)?.delete(listener);
      }
    });
  });

  return {
    app,
    nodes,
    tasks,
    calls,
    pushTaskEvent(taskId, e) {
      const list = taskEvents.get(taskId)!;
      list.push({ ...e, id: list.length });
      const task = tasks.find((t) => t.id === taskId)!;
      if (e.type === "status" && e.status) task.status = e.status;
      for (const f of followers.get(taskId) ?? []) f();
    },
  };
}
