// A submission that finds a free slot is inserted already dispatched: one statement for the task, its node read
// in RETURNING and its inference token filed by a trigger — not an insert, a dispatch CAS, a token and a node
// read. The agents' answers of one turn move their tasks to running in one statement.
// Through the edge's HTTP door, with what the database saw counted statement by statement.
import { afterAll, describe, expect, test } from "bun:test";
import type { Client, InStatement } from "@libsql/client";
import { wrapClient } from "../db/wrap-client.ts";
import { until } from "../../shared/testing/until.ts";
import { ProviderDouble } from "../testing/provider-double.ts";
import { readyNode, startTestEdge } from "../testing/test-edge.ts";
import { newTaskId } from "./store.ts";

const provider = new ProviderDouble({ double: { mode: "hold" } });
const t = await startTestEdge({ provider });
afterAll(() => t.stop());
const key = await t.createKey();
const node = await readyNode(t, provider, key.id);

/**
 * Every statement the task store sends while `fn` runs, batch by batch: its client is swapped for one that
 * notes each call and hands it on (the store is the runner's, reached past TypeScript's `private`).
 */
async function statementsDuring(fn: () => Promise<void>): Promise<string[][]> {
  const store = (t.edge.runner as unknown as { r: { tasks: { db: Client } } }).r.tasks;
  const db = store.db;
  const seen: string[][] = [];
  const sqlOf = (s: InStatement) => (typeof s === "string" ? s : s.sql).replace(/\s+/g, " ").trim();
  store.db = wrapClient(db, {
    batch: (stmts: InStatement[], mode?: Parameters<Client["batch"]>[1]) => (
      seen.push(stmts.map(sqlOf)), db.batch(stmts, mode)
    ),
    execute: ((s: InStatement) => (seen.push([sqlOf(s)]), db.execute(s))) as Client["execute"],
  });
  try {
    await fn();
  } finally {
    store.db = db;
  }
  return seen;
}

async function submit(idempotencyKey: string) {
  const res = await t.call("POST", "/api/tasks", {
    token: key.key,
    headers: { "Idempotency-Key": idempotencyKey },
    body: { prompt: "p" },
  });
  expect(res.status).toBeOneOf([200, 201]);
  return (await res.json()) as { id: string; status: string; nodeId: string | null };
}

const count = async (sql: string, ...args: string[]) => Number((await t.edge.db.execute({ sql, args })).rows[0]!.n);

async function statusEvents(taskId: string): Promise<string[]> {
  const page = await (await t.call("GET", `/api/tasks/${taskId}/events?limit=100`)).json();
  return (page.data as { type: string; status?: string }[]).filter((e) => e.type === "status").map((e) => e.status!);
}

describe("a submission to a ready node", () => {
  let first: { id: string; status: string; nodeId: string | null };

  test("is one statement: the task (dispatched, its node read back, its token filed)", async () => {
    const batches = await statementsDuring(async () => {
      first = await submit("one");
    });
    expect(first.status).toBe("dispatched");
    expect(first.nodeId).toBe(node.id);
    const submission = batches.find((b) => b.some((s) => s.includes("INSERT INTO tasks")))!;
    expect(submission).toHaveLength(1);
    expect(submission[0]).toContain("RETURNING id, seq, node_id, (SELECT json_object(");
    expect(batches.flat().filter((s) => s.includes("task_tokens"))).toEqual([]);
    // No dispatch CAS and no node read of its own, before or after.
    expect(
      batches.flat().filter((s) => /^UPDATE tasks SET status = 'dispatched'|JOIN nodes n ON n.id = t.node_id/.test(s)),
    )
      .toEqual([]);
    expect(await count("SELECT COUNT(*) AS n FROM task_tokens WHERE task_id = ?", first.id)).toBe(1);
  });

  test("its inference token is the one filed: the model endpoint takes it, and a made-up one is refused", async () => {
    const agent = provider.agents.get(node.id)!;
    const dispatched = await until("the dispatch", () => agent.dispatches.find((d) => d.taskId === first.id));
    const models = (token: string) => t.call("GET", "/v1/models", { token });
    expect((await models(dispatched.inference.token)).status).toBe(200);
    expect((await models(`${dispatched.inference.token.slice(0, -4)}beef`)).status).toBe(401);
  });

  test("the task was queued first: both moves are in its events, in order, and the node counts its slot", async () => {
    await until("running", async () => ((await statusEvents(first.id)).includes("running") ? true : undefined));
    expect(await statusEvents(first.id)).toEqual(["queued", "dispatched", "running"]);
    expect(await count("SELECT tasks_on_node AS n FROM nodes WHERE id = ?", node.id)).toBe(1);
  });

  test("an idempotent replay writes nothing and returns the same task", async () => {
    const rows = () =>
      Promise.all(["tasks", "task_tokens", "task_events"].map((table) => count(`SELECT COUNT(*) AS n FROM ${table}`)));
    const before = await rows();
    const again = await submit("one");
    expect(again.id).toBe(first.id);
    expect(await rows()).toEqual(before);
  });

  test("past the node's free slots a submission stays queued, with no token", async () => {
    const second = await submit("two"); // the node's second (last) slot
    expect(second.status).toBe("dispatched");
    const third = await submit("three");
    expect(third.status).toBe("queued");
    expect(third.nodeId).toBeNull();
    expect(await count("SELECT COUNT(*) AS n FROM task_tokens WHERE task_id = ?", third.id)).toBe(0);
    expect(await count("SELECT tasks_on_node AS n FROM nodes WHERE id = ?", node.id)).toBe(2);
    expect((await statusEvents(third.id))[0]).toBe("queued");
  });
});

describe("task ids", () => {
  test("sort by their creation time, as text, and stay unique within a millisecond", () => {
    const times = [0, 1, 61, 62, 3_843, 1_700_000_000_000, 1_800_000_000_000, 62 ** 8 - 1];
    const ids = times.map((at) => newTaskId(at));
    expect([...ids].sort()).toEqual(ids);
    for (const id of ids) expect(id).toMatch(/^t_[0-9A-Za-z]{20}$/);
    const same = new Set(Array.from({ length: 1000 }, () => newTaskId(1_800_000_000_000)));
    expect(same.size).toBe(1000);
  });
});
