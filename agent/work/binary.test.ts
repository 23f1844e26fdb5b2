/**
 * The compiled `sam-agent` binary running tasks: dispatched over its real HTTP route with the agent token,
 * delivering to a stand-in edge; cancelled through the heartbeat answer; and killed with -9 mid-task, after
 * which the next start reports the task failed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RESTART_REASON } from "./executor.ts";
import { type FakeEdge, startFakeEdge, until } from "../testing/fake-edge.ts";
import { AGENT_BINARY, ensureAgentBinary } from "../testing/binary.ts";
import { initRepo } from "../testing/git-repo.ts";

const BINARY = AGENT_BINARY;
const AGENT_TOKEN = "samagent_work_binary_test_0123456789";
let base: string;
let edge: FakeEdge;
const procs: ReturnType<typeof Bun.spawn>[] = [];

beforeAll(() => {
  ensureAgentBinary();
  base = mkdtempSync(join(tmpdir(), "sam-work-bin-"));
  edge = startFakeEdge("samnode_work_binary_test_0123456789");
});
afterAll(async () => {
  for (const p of procs) p.kill("SIGKILL");
  await Promise.all(procs.map((p) => p.exited));
  await edge.stop();
  rmSync(base, { recursive: true, force: true });
});

async function startAgent(dataDir: string): Promise<{ url: string; proc: ReturnType<typeof Bun.spawn> }> {
  const tokenFile = join(base, "tokens");
  writeFileSync(tokenFile, `SAM_NODE_TOKEN=${edge.token}\nSAM_AGENT_TOKEN=${AGENT_TOKEN}\n`, { mode: 0o600 });
  edge.ready = null;
  const proc = Bun.spawn([BINARY], {
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? "/tmp",
      SAM_NODE_ID: "node-w",
      SAM_CONTROL_PLANE_URL: edge.url,
      SAM_TOKEN_FILE: tokenFile,
      SAM_AGENT_HOST: "127.0.0.1",
      SAM_AGENT_PORT: "0",
      SAM_AGENT_DATA_DIR: dataDir,
      SAM_BOOT_SOURCE: "none",
      SAM_WORKSPACE_MODE: "host",
      SAM_HEARTBEAT_INTERVAL: "200ms",
      SAM_KILL_GRACE: "500ms",
    },
    stdout: "ignore",
    stderr: "inherit",
  });
  procs.push(proc);
  const ready = await until("the ready callback", () => edge.ready, 10_000);
  return { url: String(ready.url), proc };
}

const dispatchTo = (url: string, body: unknown) =>
  fetch(`${url}/tasks`, {
    method: "POST",
    headers: { authorization: `Bearer ${AGENT_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

function task(taskId: string, command: string, repo?: string) {
  return {
    taskId,
    prompt: "p",
    agent: { type: "command", command },
    timeoutMs: 30_000,
    inference: { baseUrl: `${edge.url}/v1`, token: "samtask_binary" },
    ...(repo ? { repo: { url: repo } } : {}),
  };
}

describe("the agent binary runs tasks", () => {
  test(
    "a dispatched command edits the repo; the result has the diff; the agent's secrets are not in its env; heartbeat cancel stops a task",
    async () => {
      const repo = initRepo(join(base, "repo"), { "a.txt": "a\n" });

      const { url } = await startAgent(join(base, "data1"));
      expect(edge.ready).toMatchObject({ capabilities: { workspaceModes: ["host"], agents: ["builtin", "command"] } });
      expect(await dispatchTo(url, task("bt1", "x")).then((r) => r.status)).toBe(202);
      const res = await dispatchTo(
        url,
        task("bt2", "echo b >> a.txt; env | grep -E '^SAM_|TOKEN' | cut -d= -f1 | sort | tr '\\n' ' '", repo),
      );
      expect(res.status).toBe(202);
      expect(await res.json()).toMatchObject({ taskId: "bt2", status: "running" });
      const result = await until("bt2's result", () => edge.results.get("bt2"), 15_000);
      expect(result).toMatchObject({ status: "succeeded", exitCode: 0 });
      expect(result.patch).toContain("+b");
      expect(edge.linesOf("bt2")).toContain("SAM_TASK_ID SAM_TASK_PROMPT ");
      expect((await dispatchTo(url, task("bt2", "true"))).status).toBe(409);
      const status = await fetch(`${url}/tasks/bt2`, { headers: { authorization: `Bearer ${AGENT_TOKEN}` } });
      expect(await status.json()).toMatchObject({ taskId: "bt2", status: "succeeded", exitCode: 0 });

      expect((await dispatchTo(url, task("bt3", "echo started; sleep 60"))).status).toBe(202);
      await until("bt3 to start", () => edge.linesOf("bt3").includes("started"));
      edge.cancel = ["bt3"];
      const cancelled = await until("bt3's result", () => edge.results.get("bt3"), 10_000);
      expect(cancelled).toMatchObject({ status: "cancelled" });
    },
    30_000,
  );

  test("kill -9 mid-task: the next start reports the task failed with the reason", async () => {
    const dataDir = join(base, "data2");
    const first = await startAgent(dataDir);
    expect((await dispatchTo(first.url, task("bk1", "echo working; sleep 60"))).status).toBe(202);
    await until("bk1 to start", () => edge.linesOf("bk1").includes("working"));
    first.proc.kill("SIGKILL");
    await first.proc.exited;
    expect(edge.results.has("bk1")).toBe(false);
    await startAgent(dataDir);
    const result = await until("bk1's result", () => edge.results.get("bk1"), 10_000);
    expect(result).toMatchObject({ status: "failed", error: RESTART_REASON });
    expect(edge.logs.get("bk1")!.map((e) => e.seq)).toEqual(edge.linesOf("bk1").map((_, i) => i));
  }, 30_000);
});
