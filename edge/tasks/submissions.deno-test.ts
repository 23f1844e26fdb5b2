// A burst of submissions to a warm node, through edge/main.ts under Deno on a real sqld: the submissions that
// arrive together share one statement (edge/tasks/store.ts `insertSubmissions`), and still the node gets exactly
// as many tasks as it has slots — the rest wait queued — and an Idempotency-Key sent twice in the burst makes one
// task. (The statement's ranking, key by key and node by node, is in submissions.test.ts.)
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { startDenoEdge } from "../testing/deno-edge.ts";
import { startSqld } from "../testing/sqld.ts";
import { freePort } from "../../shared/testing/free-port.ts";

const root = new URL("../..", import.meta.url).pathname;
const ADMIN = "admin-token-for-the-burst-test-0123";
const SLOTS = 4;

Deno.test("a burst to a warm node fills its slots exactly, queues the rest, and makes one task per Idempotency-Key", async () => {
  const dataDir = await Deno.makeTempDir();
  const port = await freePort();
  const sqld = await startSqld();
  const edge = await startDenoEdge({
    env: {
      SAM_PORT: String(port),
      SAM_DATA_DIR: dataDir,
      SAM_ADMIN_TOKEN: ADMIN,
      SAM_DATABASE_URL: sqld.url,
      SAM_RATE_LIMIT_RPM: "1000000",
      // The one node: a task beyond its slots waits for one instead of starting a second node.
      SAM_MAX_NODES: "1",
      // The node's agent double holds its tasks (they never end) and offers SLOTS of them.
      SAM_AGENT_BINARY:
        `/usr/bin/env SAM_DOUBLE_MODE=hold SAM_MAX_CONCURRENT_TASKS=${SLOTS} ${root}node_modules/.bin/bun ${root}edge/testing/agent-double-main.ts`,
    },
  });
  const url = edge.url;
  const db = createClient({ url: sqld.url });
  try {
    const started = Date.now();
    const admin = { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" };
    const key = await (await fetch(`${url}/api/keys`, { method: "POST", headers: admin, body: '{"name":"burst"}' }))
      .json();
    const node = await (await fetch(`${url}/api/nodes`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ ownerKeyId: key.id }),
    })).json();
    for (let status = ""; status !== "ready";) {
      if (Date.now() - started > 60_000) throw new Error(`the node did not get ready (${status})`);
      await new Promise((r) => setTimeout(r, 100));
      status = (await (await fetch(`${url}/api/nodes/${node.id}`, { headers: admin })).json()).status;
    }

    const submit = (idempotencyKey: string, prompt: string) =>
      fetch(`${url}/api/tasks`, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${key.key}`,
          "Content-Type": "application/json",
          "Idempotency-Key": idempotencyKey,
        },
        body: JSON.stringify({ prompt, agent: { type: "command", command: "true" } }),
      }).then(async (res) => ({ status: res.status, task: await res.json() as { id: string; status: string } }));
    const answers = await Promise.all([
      ...Array.from({ length: 3 * SLOTS }, (_, i) => submit(`burst-${i}`, `task ${i}`)),
      submit("burst-0", "task 0"),
    ]);
    assert.deepEqual(answers.map((a) => a.status).sort(), [...Array(3 * SLOTS).fill(201), 200].sort());
    const ids = new Set(answers.map((a) => a.task.id));
    assert.equal(ids.size, 3 * SLOTS, "the repeated Idempotency-Key got the task its first request made");

    // The node's slots, exactly: as many running as it has, the rest queued, however the burst was split.
    const count = async (where: string) =>
      Number((await db.execute(`SELECT COUNT(*) AS n FROM tasks WHERE ${where}`)).rows[0]!.n);
    for (let running = 0; running < SLOTS;) {
      if (Date.now() - started > 90_000) throw new Error(`only ${running} of ${SLOTS} tasks reached running`);
      await new Promise((r) => setTimeout(r, 100));
      running = await count("status = 'running'");
    }
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await count("status = 'running'"), SLOTS);
    assert.equal(await count("status = 'queued'"), 2 * SLOTS);
    const slots = (await db.execute({ sql: "SELECT tasks_on_node, slots FROM nodes WHERE id = ?", args: [node.id] }))
      .rows[0]!;
    assert.deepEqual([Number(slots.tasks_on_node), Number(slots.slots)], [SLOTS, SLOTS]);
  } finally {
    db.close();
    await edge.stop();
    await sqld.stop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
