/**
 * `POST /api/agent/boot-progress`: one `sam-boot` marker from a booting VM, posted by its boot script as the
 * phase starts or ends (node token, like every agent callback). It lets the node page draw the boot while
 * it runs and lets a boot timeout name the phase it stuck in, even when the agent never starts. Idempotent in
 * effect: a repeated marker pairs like journald's would.
 */
import type { Hono } from "hono";
import { HttpError } from "../../shared/errors.ts";
import { parseOrThrow, readJsonBody } from "../../shared/validate.ts";
import { BootProgress } from "../../shared/wire/boot.ts";
import type { CallerEnv } from "../auth/guard.ts";
import { MAX_PROGRESS_MARKERS, progressMarker, withProgress } from "../nodes/boot-record.ts";
import type { NodeStore } from "../nodes/store.ts";

export function bootProgressRoute(
  app: Hono<CallerEnv>,
  d: { nodes: NodeStore },
  nodeOf: (c: CallerEnv["Variables"]["caller"]) => string,
): void {
  app.post("/boot-progress", async (c) => {
    const nodeId = nodeOf(c.var.caller);
    const body = parseOrThrow(BootProgress, await readJsonBody(c.req.raw));
    if (body.nodeId !== nodeId) {
      throw new HttpError(403, `this node token belongs to node ${nodeId}, not ${body.nodeId}`, { code: "wrong_node" });
    }
    const node = await d.nodes.get(nodeId);
    if (!node) throw new HttpError(404, `no node ${nodeId}`, { code: "node_not_found" });
    const marker = progressMarker(body);
    if (!(await d.nodes.appendBootProgress(nodeId, marker, MAX_PROGRESS_MARKERS))) {
      return c.json({ ok: true, recorded: false });
    }
    for (let attempt = 0; attempt < 5; attempt++) {
      const fresh = await d.nodes.get(nodeId);
      if (
        !fresh ||
        (await d.nodes.swapBootTimeline(
          nodeId,
          fresh.bootTimeline,
          withProgress(fresh.bootTimeline, fresh.bootProgress),
        ))
      ) break;
    }
    return c.json({ ok: true, recorded: true });
  });
}
