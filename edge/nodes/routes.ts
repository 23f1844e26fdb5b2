/**
 * `/api/nodes*` (admin): list, read, warm, drain-and-delete, and the agent's diagnostics proxied: the event
 * log (`/events`), metrics series, boot timeline, and both SQLite exports streamed straight through.
 */
import { Hono } from "hono";
import * as v from "valibot";
import { HttpError } from "../../shared/errors.ts";
import { parseOrThrow, readJsonBody } from "../../shared/validate.ts";
import { REQUEST_TIMEOUTS, type Timeouts } from "../../shared/timeouts.ts";
import { METRICS_WINDOWS, MetricsSample, type MetricsWindow } from "../../shared/wire/metrics.ts";
import type { NodeMetricsView } from "../../shared/wire/api.ts";
import type { Authenticate } from "../auth/caller.ts";
import { type CallerEnv, guard } from "../auth/guard.ts";
import type { Runner } from "../runner/runner.ts";
import { type AgentClient, AgentUnreachable } from "./agent-client.ts";
import type { NodeArchive } from "./archive.ts";
import type { NodeRecord, NodeStore } from "./store.ts";

export type NodeRouteDeps = {
  authenticate: Authenticate;
  nodes: NodeStore;
  runner: Runner;
  agent: AgentClient;
  timeouts: Timeouts;
  maxNodes: number;
  keyExists: (id: string) => Promise<boolean>;
  /** The databases of deleted nodes (edge/nodes/archive.ts). */
  archive?: NodeArchive;
};

const WarmRequest = v.strictObject({ ownerKeyId: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(64))) });
const ListQuery = v.strictObject({
  includeDeleted: v.optional(v.picklist(["0", "1", "true", "false"])),
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
const MetricsQuery = v.strictObject({
  window: v.optional(v.picklist(Object.keys(METRICS_WINDOWS) as MetricsWindow[]), "1h"),
});
const AgentMetrics = v.object({ samples: v.array(MetricsSample) });

/** Headers an export keeps on its way through the edge. */
const PASSED_HEADERS = [
  "content-type",
  "content-length",
  "content-disposition",
  "last-modified",
  "etag",
  "cache-control",
];
/** How long the edge waits for an agent's response headers (a body may then stream for as long as it takes). */
const PROXY_TIMEOUT_MS = REQUEST_TIMEOUTS.exportProxyHeaders.ms;

export function nodeRoutes(d: NodeRouteDeps): Hono<CallerEnv> {
  const app = new Hono<CallerEnv>();
  app.use("*", guard(d.authenticate, "admin"));

  async function nodeOr404(id: string): Promise<NodeRecord> {
    const node = await d.nodes.get(id);
    if (!node) throw new HttpError(404, `no node ${id}`, { code: "node_not_found" });
    return node;
  }

  /** Call the agent; an unreachable agent is a 502 (504 on timeout) naming the node's last known state. */
  async function callAgent(node: NodeRecord, path: string): Promise<Response> {
    if (node.status === "deleted" || node.status === "failed") {
      throw new HttpError(
        409,
        `node ${node.id} is ${node.status}${node.statusReason ? ` (${node.statusReason})` : ""}; its agent is gone`,
        { code: "node_gone" },
      );
    }
    try {
      const res = await d.agent.call(node, path, { timeoutMs: PROXY_TIMEOUT_MS });
      if (res.status >= 500) {
        await res.body?.cancel();
        throw new HttpError(502, `the agent of node ${node.id} answered HTTP ${res.status}; ${lastKnown(node)}`, {
          code: "agent_error",
        });
      }
      return res;
    } catch (err) {
      if (!(err instanceof AgentUnreachable)) throw err;
      const status = err.kind === "timeout" ? 504 : 502;
      throw new HttpError(status, `the agent of node ${node.id} is unreachable (${err.message}); ${lastKnown(node)}`, {
        code: err.kind === "timeout" ? "agent_timeout" : "agent_unreachable",
      });
    }
  }

  function lastKnown(node: NodeRecord): string {
    const hb = node.lastHeartbeatAt === null
      ? "no heartbeat yet"
      : `last heartbeat ${Math.round((Date.now() - node.lastHeartbeatAt) / 1000)}s ago`;
    return `last known: status ${node.status}, ${hb}`;
  }

  async function passJson(res: Response): Promise<Response> {
    return new Response(res.body, {
      status: res.status,
      headers: { "content-type": res.headers.get("content-type") ?? "application/json" },
    });
  }

  app.get("/", async (c) => {
    const q = parseOrThrow(ListQuery, c.req.query());
    const page = await d.nodes.list({
      includeDeleted: q.includeDeleted === "1" || q.includeDeleted === "true",
      cursor: q.cursor ?? null,
      limit: q.limit,
    });
    const now = Date.now();
    return c.json({
      data: await Promise.all(page.nodes.map((n) => d.nodes.view(n, d.timeouts, now))),
      nextCursor: page.nextCursor,
    });
  });

  app.post("/", async (c) => {
    const text = await c.req.text();
    const input = parseOrThrow(
      WarmRequest,
      text.trim() === "" ? {} : await readJsonBody(new Request("http://x", { method: "POST", body: text })),
    );
    if (input.ownerKeyId && !(await d.keyExists(input.ownerKeyId))) {
      throw new HttpError(400, `ownerKeyId: no active API key ${input.ownerKeyId}`, { code: "invalid_request" });
    }
    const node = await d.runner.provisionNode(input.ownerKeyId ?? null);
    if (!node) {
      throw new HttpError(
        409,
        `the node cap is reached (SAM_MAX_NODES=${d.maxNodes}); delete a node or raise the cap`,
        { code: "node_cap_reached" },
      );
    }
    return c.json(await d.nodes.view(node, d.timeouts), 201);
  });

  app.get("/:id", async (c) => {
    const node = await nodeOr404(c.req.param("id"));
    const [view, recentProblems] = await Promise.all([d.nodes.view(node, d.timeouts), d.nodes.problems(node.id)]);
    return c.json({ ...view, recentProblems });
  });

  app.delete("/:id", async (c) => {
    const node = await nodeOr404(c.req.param("id"));
    await d.runner.drainNode(node, "deleted by the admin");
    return c.json(await d.nodes.view((await d.nodes.get(node.id))!, d.timeouts), 202);
  });

  app.get("/:id/metrics", async (c) => {
    const q = parseOrThrow(MetricsQuery, c.req.query());
    const node = await nodeOr404(c.req.param("id"));
    const since = Date.now() - METRICS_WINDOWS[q.window];
    const res = await callAgent(node, `/metrics?since=${since}&limit=10000`);
    const parsed = v.safeParse(AgentMetrics, await res.json().catch(() => null));
    if (!parsed.success) {
      throw new HttpError(502, `the agent of node ${node.id} sent metrics the edge cannot read`, {
        code: "agent_error",
      });
    }
    const view: NodeMetricsView = { nodeId: node.id, window: q.window, samples: parsed.output.samples };
    return c.json(view);
  });

  app.get("/:id/events", async (c) => {
    const node = await nodeOr404(c.req.param("id"));
    const query = new URL(c.req.url).search;
    return passJson(await callAgent(node, `/events${query}`));
  });

  app.get("/:id/boot", async (c) => {
    const node = await nodeOr404(c.req.param("id"));
    return passJson(await callAgent(node, "/boot"));
  });

  for (const kind of ["events", "metrics"] as const) {
    app.get(`/:id/${kind}/export`, async (c) => {
      const node = await nodeOr404(c.req.param("id"));
      // A dead node's agent is gone: its databases come from the copy taken before the delete, if any.
      const archived = (node.status === "deleted" || node.status === "failed")
        ? await d.archive?.get(node.id, kind)
        : null;
      if (archived) {
        const stamp = new Date(archived.archivedAt).toISOString().replace(/[-:]|\.\d+/g, "");
        return new Response(archived.bytes as Uint8Array<ArrayBuffer>, {
          headers: {
            "content-type": "application/vnd.sqlite3",
            "content-length": String(archived.bytes.byteLength),
            "content-disposition": `attachment; filename="${kind}-${node.id}-${stamp}-archived.db"`,
          },
        });
      }
      const res = await callAgent(node, `/${kind}/export`);
      const headers = new Headers();
      for (const name of PASSED_HEADERS) {
        const value = res.headers.get(name);
        if (value !== null) headers.set(name, value);
      }
      // The body streams from the agent to the client; the edge never holds the file.
      return new Response(res.body, { status: res.status, headers });
    });
  }

  return app;
}
