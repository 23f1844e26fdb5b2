// The per-node task count the triggers keep (migration 0003) equals counting the node's tasks, after every
// kind of transition: placement, dispatch, results, cancels, timeouts, node deletion; and the backfill.
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, openDatabase } from "../db/client.ts";
import { migrate } from "../db/migrate.ts";
import { MIGRATIONS } from "../db/migrations.ts";
import { until } from "../../shared/testing/until.ts";
import { ProviderDouble } from "../testing/provider-double.ts";
import { startTestEdge, type TestEdge } from "../testing/test-edge.ts";
import { ON_NODE_SQL } from "../tasks/store.ts";

let edges: TestEdge[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const e of edges) await e.stop();
  edges = [];
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Every node's kept count against a fresh COUNT(*); returns the total of tasks on nodes. */
async function expectCountsMatch(db: Client): Promise<number> {
  const r = await db.execute(`SELECT n.id, n.tasks_on_node AS kept,
    (SELECT COUNT(*) FROM tasks x WHERE x.node_id = n.id AND x.status IN ${ON_NODE_SQL}) AS counted FROM nodes n`);
  const rows = r.rows.map((row) => ({ id: String(row.id), kept: Number(row.kept), counted: Number(row.counted) }));
  expect(rows.map((x) => ({ id: x.id, n: x.kept }))).toEqual(rows.map((x) => ({ id: x.id, n: x.counted })));
  return rows.reduce((n, x) => n + x.counted, 0);
}

const submit = async (t: TestEdge, key: string) =>
  (await (await t.call("POST", "/api/tasks", {
    token: key,
    body: { prompt: "p", agent: { type: "command", command: "true" } },
  })).json()) as { id: string };
const statusOf = async (
  t: TestEdge,
  id: string,
) => ((await (await t.call("GET", `/api/tasks/${id}`)).json()) as { status: string; nodeId: string | null });

test("the kept count matches COUNT(*) through a mixed run: results, cancels, timeouts, node deletion", async () => {
  const provider = new ProviderDouble({ autoReady: true, double: { mode: "hold", capacity: 3 } });
  const t = await startTestEdge({ provider, env: { SAM_MAX_NODES: "2" } });
  edges.push(t);
  const { key } = await t.createKey();
  const tasks = [];
  for (let i = 0; i < 9; i++) tasks.push(await submit(t, key));
  await t.edge.runner.idle();
  // Two nodes of three slots: six tasks on nodes, three queued.
  await until("six tasks on nodes", async () => (await expectCountsMatch(t.edge.db)) === 6 || undefined);
  const running = [];
  for (const task of tasks) {
    const s = await statusOf(t, task.id);
    if (s.status === "running") running.push({ id: task.id, nodeId: s.nodeId! });
  }
  expect(running.length).toBeGreaterThanOrEqual(4);

  // A success and a failure from the agent free two slots, which queued tasks take.
  await provider.agents.get(running[0]!.nodeId)!.finish(running[0]!.id, {});
  await provider.agents.get(running[1]!.nodeId)!.finish(running[1]!.id, { status: "failed", exitCode: 1 });
  await t.edge.runner.idle();
  expect(await expectCountsMatch(t.edge.db)).toBe(6);

  // Cancels: one on a node, one still queued (if any is left).
  expect((await t.call("POST", `/api/tasks/${running[2]!.id}/cancel`, { token: key })).status).toBe(200);
  const queued = [];
  for (const task of tasks) if ((await statusOf(t, task.id)).status === "queued") queued.push(task.id);
  for (const id of queued) expect((await t.call("POST", `/api/tasks/${id}/cancel`, { token: key })).status).toBe(200);
  await t.edge.runner.idle();
  await expectCountsMatch(t.edge.db);

  // Node deletion drains the node; then every task left times out, and the drained node goes away.
  const nodeId = running[3]!.nodeId;
  expect((await t.call("DELETE", `/api/nodes/${nodeId}`)).status).toBeLessThan(300);
  await t.edge.runner.idle();
  await expectCountsMatch(t.edge.db);
  await t.edge.runner.tick(Date.now() + 365 * 24 * 3_600_000);
  await t.edge.runner.idle();
  expect(await expectCountsMatch(t.edge.db)).toBe(0);
  for (const task of tasks) expect(["succeeded", "failed", "cancelled"]).toContain((await statusOf(t, task.id)).status);
  const node = (await (await t.call("GET", `/api/nodes/${nodeId}`)).json()) as { status: string };
  expect(node.status).toBe("deleted");
});

test("the migration backfills the count for tasks that were already on nodes", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sam-count-"));
  dirs.push(dir);
  const db = await openDatabase(`file:${join(dir, "sam.db")}`, null);
  try {
    const before = MIGRATIONS.findIndex((m) => m.id === "0003-node-task-count");
    await migrate(db, MIGRATIONS.slice(0, before));
    for (const id of ["n-a", "n-b"]) {
      await db.execute({
        sql: `INSERT INTO nodes (id, status, status_at, provider, node_token_hash, agent_token, slots, created_at)
        VALUES (?, 'ready', 0, 'local', ?, 'x', 5, 0)`,
        args: [id, `hash-${id}`],
      });
    }
    const statuses = [["n-a", "running"], ["n-a", "dispatched"], ["n-a", "succeeded"], ["n-b", "waiting_for_agent"], [
      null,
      "queued",
    ]];
    for (const [i, [node, status]] of statuses.entries()) {
      await db.execute({
        sql:
          `INSERT INTO tasks (id, key_id, request_hash, status, status_at, prompt, agent, labels, node_id, created_at, updated_at)
        VALUES (?, 'k', 'h', ?, 0, 'p', '{}', '{}', ?, 0, 0)`,
        args: [`t-${i}`, status!, node ?? null],
      });
    }
    await migrate(db, MIGRATIONS);
    const kept = await db.execute("SELECT id, tasks_on_node AS n FROM nodes ORDER BY id");
    expect(kept.rows.map((r) => [r.id, Number(r.n)])).toEqual([["n-a", 2], ["n-b", 1]]);
    // And from then on the triggers keep it: a task leaving a node, one moving between nodes.
    await db.execute("UPDATE tasks SET status = 'failed' WHERE id = 't-0'");
    await db.execute("UPDATE tasks SET node_id = 'n-a' WHERE id = 't-3'");
    await db.execute("DELETE FROM tasks WHERE id = 't-1'");
    await expectCountsMatch(db);
    const after = await db.execute("SELECT id, tasks_on_node AS n FROM nodes ORDER BY id");
    expect(after.rows.map((r) => [r.id, Number(r.n)])).toEqual([["n-a", 1], ["n-b", 0]]);
  } finally {
    db.close();
  }
});

test("the triggers' status list is the runner's list of statuses that hold a slot", () => {
  const migration = MIGRATIONS.find((m) => m.id === "0003-node-task-count")!;
  const withList = migration.statements.filter((s) => s.includes("'running'"));
  expect(withList.length).toBe(4);
  for (const sql of withList) expect(sql).toContain(ON_NODE_SQL);
});
