// Task inference tokens name their task (`samtask_<task id>.<secret>`) and are filed under it (migration 0035):
// through the edge's HTTP door, the dispatched token opens `/v1` while its task runs; the same task id with
// another secret, or another task's id with this secret, does not; a token minted before tokens named their
// task still works while its task is active; and the migration carries the tokens it finds.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { until } from "../../shared/testing/until.ts";
import { openDatabase } from "../db/client.ts";
import { migrate } from "../db/migrate.ts";
import { MIGRATIONS } from "../db/migrations.ts";
import { ProviderDouble } from "../testing/provider-double.ts";
import { readyNode, startTestEdge } from "../testing/test-edge.ts";
import { taskIdOfToken, taskToken } from "./authenticate.ts";
import { hashToken } from "./tokens.ts";

const provider = new ProviderDouble({ double: { mode: "hold" } });
const t = await startTestEdge({ provider });
const dir = mkdtempSync(join(tmpdir(), "sam-task-tokens-"));
afterAll(async () => {
  await t.stop();
  rmSync(dir, { recursive: true, force: true });
});
const key = await t.createKey();
const node = await readyNode(t, provider, key.id);
const models = (token: string) => t.call("GET", "/v1/models", { token }).then((r) => r.status);

async function submitted(prompt: string): Promise<{ id: string; token: string }> {
  const res = await t.call("POST", "/api/tasks", { token: key.key, body: { prompt } });
  expect(res.status).toBe(201);
  const { id } = (await res.json()) as { id: string };
  const dispatch = await until("its dispatch", () => node.agent.dispatches.find((d) => d.taskId === id));
  return { id, token: dispatch.inference.token };
}

describe("task inference tokens", () => {
  test("name their task, open /v1 while it runs, and only with their own secret and task", async () => {
    const a = await submitted("a");
    const b = await submitted("b");
    expect(a.token.startsWith(`samtask_${a.id}.`)).toBe(true);
    expect(taskIdOfToken(a.token)).toBe(a.id);
    expect(await models(a.token)).toBe(200);
    const secret = (token: string) => token.slice(token.lastIndexOf(".") + 1);
    // This task with a made-up secret, another task with this secret, a token for a task that does not exist.
    expect(await models(`samtask_${a.id}.${secret(taskToken(a.id))}`)).toBe(401);
    expect(await models(`samtask_${b.id}.${secret(a.token)}`)).toBe(401);
    expect(await models(taskToken("t_00000000nothinghere0"))).toBe(401);
    // Once the task has ended, its token is refused.
    expect((await node.agent.finish(a.id, { status: "succeeded", exitCode: 0 })).ok).toBe(true);
    await until("a ended", async () => (await models(a.token)) === 401 ? true : undefined);
    expect(await models(b.token)).toBe(200);
  });

  test("a token minted before tokens named their task opens /v1 while its task is active, not after", async () => {
    const c = await submitted("c");
    const legacy = `samtask_${"L".repeat(40)}`;
    expect(taskIdOfToken(legacy)).toBeNull();
    await t.edge.db.execute({
      sql: "INSERT INTO task_tokens (task_id, token_hash, created_at) VALUES (?, ?, 1)",
      args: [c.id, hashToken(legacy)],
    });
    expect(await models(legacy)).toBe(200);
    expect(await models(`samtask_${"M".repeat(40)}`)).toBe(401);
    expect((await node.agent.finish(c.id, { status: "failed", exitCode: 1 })).ok).toBe(true);
    await until("c ended", async () => (await models(legacy)) === 401 ? true : undefined);
  });

  test("migration 0035 files the tokens it finds under their tasks", async () => {
    const db = await openDatabase(`file:${join(dir, "edge.db")}`, null);
    try {
      const at = MIGRATIONS.findIndex((m) => m.id === "0035-task-tokens-by-task");
      expect(at).toBeGreaterThan(0);
      await migrate(db, MIGRATIONS.slice(0, at));
      await db.execute("INSERT INTO task_tokens (token_hash, task_id, created_at) VALUES ('h1', 't_1', 5)");
      await migrate(db, MIGRATIONS);
      const rows = await db.execute("SELECT task_id, token_hash, created_at FROM task_tokens");
      expect(rows.rows.map((r) => [r.task_id, r.token_hash, Number(r.created_at)])).toEqual([["t_1", "h1", 5]]);
      // The triggers that file a dispatch's token were made again and file into the new table.
      await db.execute(`INSERT INTO tasks (id, key_id, request_hash, status, status_at, prompt, agent, labels,
        created_at, updated_at, dispatch_token_hash) VALUES ('t_2', 'k', 'h', 'dispatched', 7, 'p', '{}', '{}', 7, 7, 'h2')`);
      const filed = await db.execute("SELECT task_id, token_hash FROM task_tokens WHERE task_id = 't_2'");
      expect(filed.rows.map((r) => [r.task_id, r.token_hash])).toEqual([["t_2", "h2"]]);
    } finally {
      db.close();
    }
  });
});
