// The task sandbox through the real edge under Deno: edge/main.ts with the local provider starts the real
// `sam-agent` binary (built by npm test's setup); a command task submitted with an ordinary key tries to read
// the admin token the edge generated and the edge's own environment, runs as the unprivileged uid, and leaves
// a daemon — which is gone once the task has reported.
import assert from "node:assert/strict";
import { until } from "../shared/testing/until.ts";
import { startDenoEdge } from "./testing/deno-edge.ts";

const root = new URL("..", import.meta.url).pathname;

/** Host pids whose environment carries the task's marker (what the agent's own reaper looks for). */
async function processesOf(taskId: string): Promise<number[]> {
  const out: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      if ((await Deno.readTextFile(`/proc/${e.name}/environ`)).split("\0").includes(`SAM_TASK_ID=${taskId}`)) {
        out.push(Number(e.name));
      }
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

Deno.test("a task under the Deno edge runs sandboxed: no admin token, no edge environment, uid 65534, no daemon left", async () => {
  const dataDir = await Deno.makeTempDir();
  const edge = await startDenoEdge({
    env: {
      SAM_PORT: "0",
      SAM_DATA_DIR: dataDir,
      SAM_AGENT_BINARY: `${root}agent/dist/sam-agent`,
      SAM_HEARTBEAT_INTERVAL: "1s",
    },
    ready: /listening on (http:\/\/[\d.]+:\d+)[\s\S]*admin token: (samadm_\w+)/,
    timeoutMs: 20_000,
  });
  try {
    const m = edge.match;
    const [url, admin] = [m[1]!, m[2]!];
    const call = (method: string, path: string, token: string, body?: unknown) =>
      fetch(`${url}${path}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    const key = (await (await call("POST", "/api/keys", admin, { name: "mallory" })).json()).key as string;

    const tokenFile = (await Array.fromAsync(Deno.readDir(dataDir))).map((e) => e.name).find((n) =>
      n.includes("admin")
    );
    assert.ok(tokenFile, "the edge wrote its admin token into its data dir");
    const command = [
      `if [ "$(id -u)" = 0 ]; then echo "ESCAPED running as root"; exit 1; fi`,
      `cat ${dataDir}/${tokenFile} >/dev/null 2>&1 && echo "ESCAPED admin-token" || echo "blocked admin-token"`,
      `cat /proc/${edge.child.pid}/environ >/dev/null 2>&1 && echo "ESCAPED edge-environ" || echo "blocked edge-environ"`,
      `echo "uid $(id -u)"`,
      "setsid nohup sleep 300 >/dev/null 2>&1 &",
      "echo done",
    ].join("\n");
    const submitted = await call("POST", "/api/tasks", key, { prompt: "escape", agent: { type: "command", command } });
    assert.equal(submitted.status, 201);
    const task = await submitted.json();
    const done = await until("the task to end", async () => {
      const v = await (await call("GET", `/api/tasks/${task.id}`, key)).json();
      return ["succeeded", "failed", "cancelled"].includes(v.status) ? v : undefined;
    }, 60_000);
    assert.equal(done.status, "succeeded");
    const events = (await (await call("GET", `/api/tasks/${task.id}/events?limit=1000`, key)).json()).data as {
      type: string;
      message: string;
    }[];
    const lines = events.filter((e) => e.type === "log").map((e) => e.message);
    for (const line of ["blocked admin-token", "blocked edge-environ", "uid 65534", "done"]) {
      assert.ok(lines.includes(line), `${line} in ${JSON.stringify(lines)}`);
    }
    assert.deepEqual(lines.filter((l) => l.startsWith("ESCAPED")), []);
    assert.deepEqual(await processesOf(task.id), []);
  } finally {
    await edge.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});
