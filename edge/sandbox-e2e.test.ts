/**
 * The host-mode task sandbox end to end: an edge with the local provider starting the real `sam-agent`
 * binary, and tasks submitted with ordinary API keys. A hostile command task tries every escape a user found
 * without the sandbox — the edge's data dir, the node's tokens file, another key's workspace, the edge's
 * environment, signalling its agent, a daemon left behind, a fork past its process limit, an allocation past
 * its memory limit — and fails at each, while the task itself still reports its result. No task's process
 * outlives its end, its cancel, or its agent. Without bwrap, a host-mode task is refused naming the package.
 *
 * The tests run as root: the reads fail because the task runs as uid 65534 in the initial user namespace
 * (a real uid, checked through /proc/self/uid_map) and because nothing of the host's data is bound into it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TaskEventView, TaskView } from "../shared/wire/api.ts";
import { until } from "../shared/testing/until.ts";
import { startTestEdge, type TestEdge } from "./testing/test-edge.ts";
import { LocalProvider } from "./providers/local/local.ts";
import { AGENT_BINARY, ensureAgentBinary } from "../agent/testing/binary.ts";
import { taskProcesses } from "../agent/work/sandbox/reap.ts";

let base: string;
let edge: TestEdge;
let bare: TestEdge;

function localEdge(env: Record<string, string>): Promise<TestEdge> {
  const dataDir = mkdtempSync(join(base, "edge-"));
  const provider = new LocalProvider({
    dataDir,
    command: [AGENT_BINARY],
    heartbeatIntervalMs: 1_000,
    stopGraceMs: 2_000,
    env,
  });
  return startTestEdge({ dataDir, provider, env: { SAM_HEARTBEAT_INTERVAL: "1s" } });
}

beforeAll(async () => {
  ensureAgentBinary();
  base = mkdtempSync(join(tmpdir(), "sam-sandbox-e2e-"));
  // Two tasks at once on one node: the victim and the attacker share the agent, its data dir and its tokens.
  edge = await localEdge({
    SAM_MAX_CONCURRENT_TASKS: "4",
    SAM_TASK_MAX_PROCESSES: "32",
    SAM_TASK_MEMORY_LIMIT: "128m",
  });
  // A node without bwrap: util-linux's tools and a shell, nothing else on PATH.
  const bin = join(base, "bin-without-bwrap");
  mkdirSync(bin);
  for (const tool of ["sh", "prlimit", "setpriv", "git"]) symlinkSync(Bun.which(tool)!, join(bin, tool));
  bare = await localEdge({ PATH: bin });
}, 60_000);

afterAll(async () => {
  await edge?.stop({ keepData: true });
  await bare?.stop({ keepData: true });
  rmSync(base, { recursive: true, force: true });
}, 60_000);

async function submit(t: TestEdge, key: string, command: string): Promise<TaskView> {
  const res = await t.call("POST", "/api/tasks", {
    token: key,
    body: { prompt: "sandbox test", agent: { type: "command", command } },
  });
  expect(res.status).toBe(201);
  return (await res.json()) as TaskView;
}

const view = async (t: TestEdge, key: string, id: string) =>
  (await (await t.call("GET", `/api/tasks/${id}`, { token: key })).json()) as TaskView;

function finished(t: TestEdge, key: string, id: string): Promise<TaskView> {
  return until(`task ${id} to finish`, async () => {
    const v = await view(t, key, id);
    return ["succeeded", "failed", "cancelled"].includes(v.status) ? v : undefined;
  }, 40_000);
}

async function logs(t: TestEdge, key: string, id: string): Promise<string[]> {
  const res = await t.call("GET", `/api/tasks/${id}/events?limit=1000`, { token: key });
  const { data } = (await res.json()) as { data: TaskEventView[] };
  return data.filter((e) => e.type === "log").map((e) => e.message ?? "");
}

const nodeDir = (t: TestEdge, nodeId: string) => join(t.dataDir, "nodes", nodeId);
const workspaceOf = (t: TestEdge, nodeId: string, taskId: string) =>
  join(nodeDir(t, nodeId), "data", "workspaces", taskId);

/** A running task's node and its processes as the host sees them, once `ready` shows in its output. */
async function runningTask(t: TestEdge, key: string, id: string, ready: string) {
  await until(`${id} to print ${ready}`, async () => (await logs(t, key, id)).includes(ready), 30_000);
  const nodeId = (await view(t, key, id)).nodeId!;
  const workspace = workspaceOf(t, nodeId, id);
  const pids = await until(`${id}'s sleeps`, () => {
    const sleeps = taskProcesses(id, workspace).filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0")[0] === "sleep";
      } catch {
        return false;
      }
    });
    return sleeps.length >= 2 ? sleeps : undefined;
  });
  return { nodeId, workspace, pids };
}

const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
};

const DAEMONISE = "setsid nohup sleep 300 >/dev/null 2>&1 & sleep 300 & echo started; wait";

describe("a host-mode task in the sandbox", () => {
  test("a hostile task fails at every escape, still reports its result, and leaves no process behind", async () => {
    const alice = await edge.createKey("alice");
    const bob = await edge.createKey("bob");
    const victim = await submit(edge, alice.key, `echo alice-secret > secret.txt; ${DAEMONISE}`);
    const { nodeId: aliceNode, workspace: victimWs } = await runningTask(edge, alice.key, victim.id, "started");
    expect(readFileSync(join(victimWs, "secret.txt"), "utf8")).toBe("alice-secret\n");
    // Bob's node, warm: his next task runs on it, so the attack knows its own agent's pid and tokens file.
    const warm = await finished(edge, bob.key, (await submit(edge, bob.key, "true")).id);
    const nodeId = warm.nodeId!;
    // What the edge keeps beside its database when it generates the admin token.
    writeFileSync(join(edge.dataDir, "admin-token"), "admin-token-in-the-edge-data-dir\n", { mode: 0o600 });
    const agentPid = Number(readFileSync(join(nodeDir(edge, nodeId), "agent.pid"), "utf8"));
    const aliceAgentPid = Number(readFileSync(join(nodeDir(edge, aliceNode), "agent.pid"), "utf8"));
    const tokens = join(nodeDir(edge, nodeId), "tokens");
    expect(existsSync(tokens)).toBe(true);

    const attempts: [string, string][] = [
      ["edge-admin-token", `cat ${edge.dataDir}/admin-token`],
      ["edge-database", `head -c 16 ${edge.dataDir}/sam.db`],
      ["edge-database-relative", `head -c 16 ../../../../../../../../../..${edge.dataDir}/sam.db`],
      ["node-tokens", `cat ${tokens}`],
      ["node-tokens-relative", `cat ../../../tokens`],
      ["other-node-tokens", `cat ${join(nodeDir(edge, aliceNode), "tokens")}`],
      ["every-node-tokens", `cat ${edge.dataDir}/nodes/*/tokens`],
      ["list-nodes", `ls ${edge.dataDir}/nodes`],
      ["agent-database", `head -c 16 ${nodeDir(edge, nodeId)}/data/events.db`],
      ["other-workspace", `cat ${victimWs}/secret.txt`],
      ["other-workspace-relative", `cat ../${victim.id}/secret.txt`],
      ["edge-environ", `cat /proc/${process.pid}/environ`],
      ["agent-environ", `cat /proc/${agentPid}/environ`],
      ["other-agent-environ", `cat /proc/${aliceAgentPid}/environ`],
      ["signal-agent", `kill -0 ${agentPid}`],
      ["etc-shadow", "head -c 1 /etc/shadow"],
      ["write-outside", "touch /usr/escaped"],
    ];
    const script = [
      ...attempts.map(([name, cmd]) =>
        `if ${cmd} >/dev/null 2>&1; then echo "ESCAPED ${name}"; else echo "blocked ${name}"; fi`
      ),
      `echo "uid $(id -u) gid $(id -g)"`,
      `awk '{ print "uid_map", $1, $2, $3 }' /proc/self/uid_map`,
      `echo "cwd $(pwd)"`,
      // A fork bomb: the subshell dies at the first fork the limit refuses; then kill what it made (builtins only).
      `( for i in $(seq 1 80); do sleep 60 & done ) 2>/dev/null; echo "fork-bomb exit $?"`,
      `set -- /proc/[0-9]*; echo "processes $#"`,
      "kill -9 -1 2>/dev/null",
      `if awk 'BEGIN { s = "x"; for (i = 0; i < 28; i++) s = s s; print length(s) }' >/dev/null 2>&1; then echo "ESCAPED memory"; else echo "blocked memory"; fi`,
      "setsid nohup sleep 300 >/dev/null 2>&1 &",
      "echo finished",
    ].join("\n");
    const hostile = await submit(edge, bob.key, script);
    const done = await finished(edge, bob.key, hostile.id);
    const lines = await logs(edge, bob.key, hostile.id);
    expect(done.status).toBe("succeeded");
    expect(done.nodeId).toBe(nodeId);
    expect(nodeId).not.toBe(aliceNode); // nodes are per key; on the local provider they share one machine
    expect(lines).toContain("finished");
    for (const [name] of attempts) expect(lines).toContain(`blocked ${name}`);
    expect(lines.filter((l) => l.startsWith("ESCAPED"))).toEqual([]);
    expect(lines).toContain("uid 65534 gid 65534");
    // The initial user namespace (the identity map): 65534 is the kernel's uid, not a mapping of root.
    expect(lines).toContain("uid_map 0 0 4294967295");
    expect(lines).toContain("cwd /workspace");
    expect(lines).toContain("fork-bomb exit 2");
    const procs = Number(lines.find((l) => l.startsWith("processes "))!.split(" ")[1]);
    expect(procs).toBeLessThanOrEqual(33); // 32 of the task's uid, and the namespace's init
    expect(lines).toContain("blocked memory");
    // Its daemon died with its PID namespace, before the result was sent.
    expect(taskProcesses(hostile.id, workspaceOf(edge, nodeId, hostile.id))).toEqual([]);
    expect(readFileSync(join(victimWs, "secret.txt"), "utf8")).toBe("alice-secret\n");
    // After a task, the agent's data dir and every database in it (work.db included) are owner-only.
    const agentData = join(nodeDir(edge, nodeId), "data");
    expect(statSync(agentData).mode & 0o777).toBe(0o700);
    const dbs = readdirSync(agentData).filter((f) => /\.db(-wal|-shm)?$/.test(f));
    expect(dbs).toEqual(expect.arrayContaining(["events.db", "metrics.db", "work.db", "work.db-wal"]));
    for (const f of dbs) expect([f, statSync(join(agentData, f)).mode & 0o777]).toEqual([f, 0o600]);

    // The victim, cancelled: its setsid daemon goes with it.
    const cancel = await edge.call("POST", `/api/tasks/${victim.id}/cancel`, { token: alice.key });
    expect(cancel.status).toBeLessThan(300);
    expect((await finished(edge, alice.key, victim.id)).status).toBe("cancelled");
    await until("the victim's processes to die", () => taskProcesses(victim.id, victimWs).length === 0);
  }, 120_000);

  test("a task's daemon dies with its agent", async () => {
    const { key } = await edge.createKey("carol");
    const task = await submit(edge, key, DAEMONISE);
    const { nodeId, pids } = await runningTask(edge, key, task.id, "started");
    expect(pids.every(alive)).toBe(true);
    process.kill(Number(readFileSync(join(nodeDir(edge, nodeId), "agent.pid"), "utf8")), "SIGKILL");
    await until("the task's processes to die with the agent", () => pids.every((p) => !alive(p)));
  }, 60_000);

  test("without bwrap a host-mode task is refused, naming the package", async () => {
    const { key } = await bare.createKey("dave");
    const task = await submit(bare, key, "echo should-not-run");
    const done = await finished(bare, key, task.id);
    expect(done.status).toBe("failed");
    expect(done.error).toContain("this node lacks 'bwrap': install the Debian/Ubuntu package 'bubblewrap'");
    expect(done.error).toContain("SAM_TASK_SANDBOX=off");
    expect(await logs(bare, key, task.id)).not.toContain("should-not-run");
  }, 60_000);
});
