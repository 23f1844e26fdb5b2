// A node's last words through the real edge under Deno: its heartbeats carry its warnings and errors, the edge
// keeps them (a resent heartbeat adds nothing, at most 100 per node), and `GET /api/nodes/:id` still shows
// them once the node is deleted or has failed, when its agent and events.db are gone. The local provider's
// "agent" is a sleeping process; the test speaks for it with the node token the provider wrote.
import assert from "node:assert/strict";
import { until } from "../../shared/testing/until.ts";
import { startDenoEdge } from "../testing/deno-edge.ts";
import { readyReport } from "../../shared/testing/agent-ready.ts";

const ADMIN = "admin-token-for-last-words-0123456";

type Problem = { at: number; level: string; type: string; message: string; taskId: string | null; repeats: number };

Deno.test("last words: heartbeats' warnings and errors outlive a deleted and a failed node; bad ones are a 400", async () => {
  const dataDir = await Deno.makeTempDir();
  const edge = await startDenoEdge({
    env: {
      SAM_PORT: "0",
      SAM_DATA_DIR: dataDir,
      SAM_ADMIN_TOKEN: ADMIN,
      SAM_AGENT_BINARY: "sleep 600",
      SAM_TICK_INTERVAL: "1s",
    },
  });
  try {
    const url = edge.url;
    const admin = (path: string, init: RequestInit = {}) =>
      fetch(`${url}${path}`, { ...init, headers: { Authorization: `Bearer ${ADMIN}`, ...init.headers } });
    const view = async (id: string) => await (await admin(`/api/nodes/${id}`)).json();

    /** A node whose agent the test plays: its id and a poster with the node token the provider wrote. */
    async function node() {
      const res = await admin("/api/nodes", { method: "POST" });
      assert.equal(res.status, 201);
      const nodeId = (await res.json()).id as string;
      const tokens = await until("the node's tokens file", async () => {
        try {
          return await Deno.readTextFile(`${dataDir}/nodes/${nodeId}/tokens`);
        } catch {
          return undefined;
        }
      }, 20_000);
      const token = /SAM_NODE_TOKEN=(\S+)/.exec(tokens)![1]!;
      const post = (path: string, body: unknown) =>
        fetch(`${url}/api/agent/${path}`, {
          method: "POST",
          headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
          body: JSON.stringify(body),
        });
      const heartbeat = (recentProblems?: unknown[]) =>
        post("heartbeat", { nodeId, at: Date.now(), uptimeMs: 1_000, activeTasks: [], recentProblems });
      const ready = (extra: Record<string, unknown> = {}) => post("ready", { ...readyReport(nodeId), ...extra });
      return { nodeId, heartbeat, ready };
    }
    const t0 = Date.now() - 60_000;

    // 1. A node heartbeats its problems; a resent heartbeat (its answer lost) updates instead of repeating.
    const a = await node();
    assert.equal((await a.ready()).status, 200);
    const outage = {
      at: t0 + 3,
      level: "warn",
      type: "heartbeat.failed",
      message: "heartbeat failed: timed out",
      repeats: 4,
      lastAt: t0 + 9,
    };
    const problems = [
      { at: t0 + 1, level: "warn", type: "disk", message: "disk 93% full" },
      { at: t0 + 2, level: "error", type: "error", message: "clone failed: repository not found", taskId: "t-42" },
      outage,
    ];
    assert.equal((await a.heartbeat(problems)).status, 200);
    assert.equal(
      (await a.heartbeat([...problems.slice(0, 2), { ...outage, repeats: 6, lastAt: t0 + 12 }])).status,
      200,
    );
    assert.equal((await a.heartbeat()).status, 200); // a heartbeat without any keeps what is stored

    // 2. Bad input is a 400 in the one error shape, and stores nothing.
    for (
      const [bad, field] of [
        [
          [{ at: t0, level: "fatal", type: "x", message: "y" }],
          /recentProblems\.0\.level: level must be warn or error/,
        ],
        [[{ at: t0, level: "warn", type: "x", message: "m".repeat(1_001) }], /recentProblems\.0\.message/],
        [[{ at: t0, level: "warn", type: "t".repeat(65), message: "m" }], /recentProblems\.0\.type/],
        [[{ at: t0, level: "warn", type: "x", message: "m", taskId: "../etc" }], /recentProblems\.0\.taskId/],
        [
          Array.from({ length: 51 }, (_, i) => ({ at: t0 + i, level: "warn", type: "x", message: `m${i}` })),
          /recentProblems lists at most 50 problems/,
        ],
      ] as const
    ) {
      const res = await a.heartbeat(bad as unknown as unknown[]);
      assert.equal(res.status, 400);
      const body = await res.json();
      assert.equal(body.error.type, "invalid_request_error");
      assert.match(body.error.message, field);
    }

    // 3. Deleted: the agent is gone (nothing answers at its URL), its last words are still on the edge.
    assert.equal((await admin(`/api/nodes/${a.nodeId}`, { method: "DELETE" })).status, 202);
    const deleted = await until("the node to be deleted", async () => {
      const v = await view(a.nodeId);
      return v.status === "deleted" ? v : undefined;
    }, 20_000);
    assert.deepEqual(
      deleted.recentProblems.map((p: Problem) => [p.at - t0, p.level, p.type, p.message, p.taskId, p.repeats]),
      [
        [3, "warn", "heartbeat.failed", "heartbeat failed: timed out", null, 6],
        [2, "error", "error", "clone failed: repository not found", "t-42", 0],
        [1, "warn", "disk", "disk 93% full", null, 0],
      ],
    );
    assert.equal(deleted.recentProblems[0].lastAt, t0 + 12);
    // Its token went with it: a late heartbeat cannot add to the record.
    assert.equal((await a.heartbeat([{ at: t0 + 20, level: "warn", type: "x", message: "late" }])).status, 401);
    // The list stays light: problems are only on the node's own view.
    const list = await (await admin("/api/nodes?includeDeleted=1")).json();
    assert.equal(list.data.find((n: { id: string }) => n.id === a.nodeId).recentProblems, undefined);

    // 4. Failed: 150 problems over three heartbeats, then the node fails; the newest 100 are kept.
    const b = await node();
    for (let beat = 0; beat < 3; beat++) {
      const batch = Array.from({ length: 50 }, (_, i) => ({
        at: t0 + beat * 50 + i,
        level: "error",
        type: "task.failed",
        message: `problem ${beat * 50 + i}`,
      }));
      assert.equal((await b.heartbeat(batch)).status, 200);
    }
    assert.equal((await b.ready({ degraded: "no TLS certificate" })).status, 200);
    const failed = await until("the degraded node to fail", async () => {
      const v = await view(b.nodeId);
      return v.status === "failed" || v.status === "deleted" ? v : undefined;
    }, 20_000);
    assert.equal(failed.recentProblems.length, 100);
    assert.equal(failed.recentProblems[0].message, "problem 149");
    assert.equal(failed.recentProblems[99].message, "problem 50");
  } finally {
    await edge.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});
