// The admin node page lists the last warnings and errors a node's heartbeats carried, on a live node and on a
// deleted one whose agent is gone: the whole edge (API, store, admin pages) on a loopback port.
import { afterAll, describe, expect, test } from "bun:test";
import { until } from "../../shared/testing/until.ts";
import { ProviderDouble } from "../testing/provider-double.ts";
import { startTestEdge } from "../testing/test-edge.ts";

const provider = new ProviderDouble({ autoReady: true, double: { mode: "hold" } });
const t = await startTestEdge({ provider });
afterAll(() => t.stop());

const page = async (nodeId: string) => {
  const res = await t.call("GET", `/admin/nodes/${nodeId}`);
  expect(res.status).toBe(200);
  return await res.text();
};

describe("admin node page: last warnings and errors", () => {
  test("shown newest first, counted repeats and task links, and still there once the node is deleted", async () => {
    const nodeId = (await (await t.call("POST", "/api/nodes")).json()).id as string;
    await until(
      "the node ready",
      async () => (await (await t.call("GET", `/api/nodes/${nodeId}`)).json()).status === "ready",
    );
    expect(await page(nodeId)).toContain("None reported by its heartbeats.");

    const at = Date.UTC(2026, 0, 2, 3, 4, 5);
    const beat = await t.call("POST", "/api/agent/heartbeat", {
      token: provider.inputs.get(nodeId)!.nodeToken,
      body: {
        nodeId,
        at,
        uptimeMs: 1,
        activeTasks: [],
        recentProblems: [
          { at, level: "warn", type: "disk", message: "disk 93% full" },
          {
            at: at + 1_000,
            level: "error",
            type: "error",
            message: "clone failed <script>x()</script>",
            taskId: "t-7",
          },
          {
            at: at + 2_000,
            level: "warn",
            type: "heartbeat.failed",
            message: "heartbeat failed: timed out",
            repeats: 2,
            lastAt: at + 62_000,
          },
        ],
      },
    });
    expect(beat.status).toBe(200);

    expect((await t.call("DELETE", `/api/nodes/${nodeId}`)).status).toBe(202);
    await until(
      "the node deleted",
      async () => (await (await t.call("GET", `/api/nodes/${nodeId}`)).json()).status === "deleted",
    );
    const html = await page(nodeId);
    expect(html).toContain("Last warnings and errors");
    const table = html.slice(html.indexOf('id="problems"'), html.indexOf("</table>", html.indexOf('id="problems"')));
    expect([...table.matchAll(/data-type="([^"]+)"/g)].map((m) => m[1])).toEqual(["heartbeat.failed", "error", "disk"]);
    expect(table).toContain("heartbeat failed: timed out");
    expect(table).toContain("(×3, the last at 2026-01-02 03:05:07Z)");
    expect(table).toContain('href="/admin/tasks/t-7"');
    expect(table).toContain("2026-01-02 03:04:05Z");
    // The agent's text is shown, never run.
    expect(table).toContain("clone failed &lt;script&gt;x()&lt;/script&gt;");
    expect(table).not.toContain("<script>");
  });
});
