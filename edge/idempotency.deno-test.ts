// Safe retries: an edge process SIGKILLed in the middle of a burst of submissions, restarted on the same
// database, and every request that failed at the client retried with the same Idempotency-Key and body:
// each key ends up with exactly one task, whether its first try was lost before or after the commit.
import assert from "node:assert/strict";
import { startSqld } from "./testing/sqld.ts";
import { freePort } from "../shared/testing/free-port.ts";

const root = new URL("..", import.meta.url).pathname;
const ADMIN = "admin-token-for-the-retry-test-0123";

async function startEdge(dataDir: string, port: number, databaseUrl: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "edge/main.ts"],
    cwd: root,
    env: {
      SAM_PORT: String(port),
      SAM_DATA_DIR: dataDir,
      SAM_ADMIN_TOKEN: ADMIN,
      SAM_MAX_NODES: "1",
      SAM_DATABASE_URL: databaseUrl,
      // 300 submissions from one key: above the default per-key submission limit, which is not under test here.
      SAM_RATE_LIMIT_RPM: "1000000",
      SAM_AGENT_BINARY: `${root}node_modules/.bin/bun ${root}edge/testing/agent-double-main.ts`,
    },
    stdout: "null",
    stderr: "null",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  while (!(await fetch(`${url}/healthz`).then((r) => r.ok, () => false))) {
    if (Date.now() > deadline) throw new Error("the edge did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, url };
}

Deno.test("a retry with the same Idempotency-Key after the edge was killed mid-request never makes a second task", async () => {
  const dataDir = await Deno.makeTempDir();
  const port = await freePort();
  // A database server outlives the edge: a write the edge sent before it died may still commit there.
  const sqld = await startSqld();
  let edge = await startEdge(dataDir, port, sqld.url);
  try {
    const admin = { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" };
    const key = await (await fetch(`${edge.url}/api/keys`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ name: "retry" }),
    })).json();
    const submit = (i: number) =>
      fetch(`${edge.url}/api/tasks`, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${key.key}`,
          "Content-Type": "application/json",
          "Idempotency-Key": `burst-${i}`,
        },
        body: JSON.stringify({ prompt: `task ${i}`, agent: { type: "command", command: "true" } }),
      }).then(async (res) => ({ status: res.status, id: ((await res.json()) as { id?: string }).id ?? null }))
        // No answer, or one cut off after its headers (the kill can land between headers and body): a client
        // that never got the whole answer, which is what it retries.
        .catch(() => ({ status: 0, id: null }));

    // 32 clients sending one request after another, as a load generator would; the edge is killed once 100
    // are answered, so some requests are in flight (committed or not) and the rest meet a closed port.
    const N = 300;
    const first: { status: number; id: string | null }[] = new Array(N).fill({ status: 0, id: null });
    let next = 0;
    let answered = 0;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < N) {
        const i = next++;
        first[i] = await submit(i);
        if (++answered === 100) edge.child.kill("SIGKILL");
      }
    }));
    await edge.child.status;
    const failed = first.flatMap((r, i) => (r.status === 201 ? [] : [i]));
    assert.ok(failed.length > 0, "the kill should have cut some requests");

    edge = await startEdge(dataDir, port, sqld.url);
    const retried = await Promise.all(failed.map(submit));
    // 201: the first try never committed; 200: it did, and the retry got that task back.
    assert.deepEqual(retried.filter((r) => r.status !== 200 && r.status !== 201), []);
    failed.forEach((i, n) => (first[i] = retried[n]!));
    // A client whose answer was lost after the commit retries too: the edge cannot tell, and must not care.
    const again = await Promise.all(Array.from({ length: N }, (_, i) => submit(i)));
    assert.deepEqual(again.map((r) => r.status), new Array(N).fill(200));
    assert.deepEqual(again.map((r) => r.id), first.map((r) => r.id));

    const prompts: string[] = [];
    for (let cursor: string | null = ""; cursor !== null;) {
      const page =
        await (await fetch(`${edge.url}/api/tasks?limit=500${cursor ? `&cursor=${cursor}` : ""}`, { headers: admin }))
          .json();
      prompts.push(...page.data.map((t: { prompt: string }) => t.prompt));
      cursor = page.nextCursor;
    }
    assert.equal(prompts.length, N);
    assert.equal(new Set(prompts).size, N);
  } finally {
    try {
      edge.child.kill("SIGINT");
    } catch {
      // already gone (a failed restart)
    }
    await edge.child.status;
    await sqld.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});
