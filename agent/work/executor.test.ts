import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { HttpError } from "../../shared/errors.ts";
import type { TaskDispatch } from "../../shared/wire/task.ts";
import type { TaskExecutor } from "../contracts.ts";
import { type ScriptedChat, startScriptedChat } from "../../shared/testing/scripted-chat.ts";
import { WORK_DEFAULTS, type WorkConfig } from "./config.ts";
import { createTaskExecutor, RESTART_REASON } from "./executor.ts";
import { workCapabilities } from "./index.ts";
import { type FakeEdge, fetchControlPlane, memoryRecorder, startFakeEdge, until } from "../testing/fake-edge.ts";
import { initRepo } from "../testing/git-repo.ts";
import { SANDBOX_DEFAULTS } from "./sandbox/config.ts";
import { taskProcesses } from "./sandbox/reap.ts";

const NODE_SECRET = "samnode_must_never_leak_0123456789";
const baseEnv = {
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: process.env.HOME ?? "/tmp",
  SAM_NODE_TOKEN: NODE_SECRET,
  SAM_AGENT_TOKEN: "samagent_x",
};
let base: string;
let repo: string;
let edge: FakeEdge;
let model: ScriptedChat;
const executors: TaskExecutor[] = [];
let n = 0;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), "sam-exec-"));
  repo = initRepo(join(base, "repo"), { "hello.txt": "hello\n" }, baseEnv);
  edge = startFakeEdge();
  model = await startScriptedChat();
});
afterAll(async () => {
  await Promise.all(executors.map((e) => e.shutdown().catch(() => {})));
  await edge.stop();
  await model.close();
  rmSync(base, { recursive: true, force: true });
});

function harness(over: Partial<WorkConfig> = {}, env: Record<string, string> = baseEnv) {
  const dataDir = join(base, `data-${++n}`);
  const events = memoryRecorder();
  const config: WorkConfig = { ...WORK_DEFAULTS, dataDir, workspaceMode: "host", killGraceMs: 500, ...over };
  const executor = createTaskExecutor({ config, events, controlPlane: fetchControlPlane(edge.url, edge.token), env });
  executors.push(executor);
  return { executor, events, dataDir };
}

function dispatch(over: Partial<TaskDispatch> & { command?: string } = {}): TaskDispatch {
  const { command, ...rest } = over;
  return {
    taskId: `t${++n}`,
    prompt: "add a line to hello.txt",
    agent: command ? { type: "command", command } : { type: "builtin" },
    inference: { baseUrl: model.url, token: "samtask_abc" },
    timeoutMs: 20_000,
    ...rest,
  };
}

/** A process is gone once it is reaped or a zombie. */
const dead = (pid: number) =>
  !/^\d+ \(.*\) [^Z]/.test(existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, "utf8") : "");

/** The task's `sleep` processes, by host pid. */
function sleepsOf(taskId: string, workspace: string): number[] {
  return taskProcesses(taskId, workspace).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0")[0] === "sleep";
    } catch {
      return false;
    }
  });
}

const resultOf = (taskId: string) => until(`the result of ${taskId}`, () => edge.results.get(taskId), 15_000);

describe("command tasks on the host", () => {
  test("edits a cloned repo; output streams in order; the result carries the diff; the workspace goes", async () => {
    const { executor, events, dataDir } = harness();
    const d = dispatch({
      repo: { url: repo },
      command:
        'echo "start $SAM_TASK_PROMPT"; echo world >> hello.txt; echo oops >&2; env | grep -c SAM_NODE_TOKEN || true; echo "key=$OPENAI_API_KEY"',
    });
    const state = await executor.start(d);
    expect(state).toMatchObject({ taskId: d.taskId, status: "running", finishedAt: null });
    const result = await resultOf(d.taskId);
    expect(result).toMatchObject({ status: "succeeded", exitCode: 0 });
    expect(result.diffStat).toContain("hello.txt | 1 +");
    expect(result.patch).toContain("+world");
    expect(result.steps!.map((s) => s.name)).toEqual(["clone", "agent", "diff"]);
    const lines = edge.linesOf(d.taskId);
    expect(lines).toContain("start add a line to hello.txt");
    expect(lines).toContain("oops");
    expect(lines).toContain("key=samtask_abc");
    expect(lines).toContain("0"); // no SAM_NODE_TOKEN in the command's environment
    expect(edge.logs.get(d.taskId)!.map((e) => e.seq)).toEqual(lines.map((_, i) => i));
    expect(lines.indexOf("start add a line to hello.txt")).toBeLessThan(lines.indexOf("key=samtask_abc"));
    expect(result.summary).toContain("key=samtask_abc");
    expect(JSON.stringify(events.events)).not.toContain(NODE_SECRET);
    expect(executor.status(d.taskId)).toMatchObject({ status: "succeeded", exitCode: 0 });
    await until("the workspace to be removed", () => !existsSync(join(dataDir, "workspaces", d.taskId)));
    expect(events.events.map((e) => e.type)).toEqual(
      expect.arrayContaining(["workspace.create", "task.output", "task.step", "workspace.cleanup"]),
    );
  }, 20_000);

  test(
    "what a task plants in .git (fsmonitor, hooks, a filter driver) never runs when the agent collects the change",
    async () => {
      const { executor } = harness();
      const marker = join(base, `planted-ran-${++n}`);
      const plant = [
        `git config core.fsmonitor 'touch ${marker}.fsmonitor; false'`,
        `git config filter.evil.clean 'touch ${marker}.filter; cat'`,
        "echo '* filter=evil' > .gitattributes",
        `printf '#!/bin/sh\ntouch ${marker}.hook\n' > .git/hooks/post-index-change`,
        "chmod +x .git/hooks/post-index-change",
        "echo world >> hello.txt",
      ].join("; ");
      const d = dispatch({ repo: { url: repo }, command: plant });
      await executor.start(d);
      const result = await resultOf(d.taskId);
      expect(result).toMatchObject({ status: "succeeded" });
      expect(result.patch).toContain("+world");
      for (const what of ["fsmonitor", "filter", "hook"]) {
        expect([what, existsSync(`${marker}.${what}`)]).toEqual([
          what,
          false,
        ]);
      }
    },
    20_000,
  );

  test("a failing command is reported with its exit code; keep-on-failure keeps the workspace", async () => {
    const { executor, events, dataDir } = harness({ keepOnFailure: true });
    const d = dispatch({ command: "echo partial > out.txt; exit 3" });
    await executor.start(d);
    const result = await resultOf(d.taskId);
    expect(result).toMatchObject({ status: "failed", exitCode: 3, error: "command exited with code 3" });
    const kept = await until("cleanup to run", () => events.events.find((e) => e.type === "workspace.cleanup"));
    expect(kept.message).toStartWith("workspace kept for inspection");
    expect(readFileSync(join(dataDir, "workspaces", d.taskId, "out.txt"), "utf8")).toBe("partial\n");
  }, 20_000);

  test("a clone that fails fails the task with git's reason", async () => {
    const { executor } = harness();
    const d = dispatch({ repo: { url: join(base, "no-such-repo") }, command: "true" });
    await executor.start(d);
    const result = await resultOf(d.taskId);
    expect(result.status).toBe("failed");
    expect(result.error).toContain("git clone of");
  }, 20_000);

  test.each(["on", "off"] as const)(
    "cancel kills every process of the task, a setsid daemon too, and the task ends cancelled (sandbox %s)",
    async (mode) => {
      const { executor, dataDir } = harness({ sandbox: { ...SANDBOX_DEFAULTS, mode } });
      const d = dispatch({ command: "setsid sleep 61 </dev/null >/dev/null 2>&1 & sleep 60 & echo started; wait" });
      await executor.start(d);
      await until("the task's output", () => edge.linesOf(d.taskId).includes("started"));
      // pids as the host sees them (inside the sandbox `$!` is a pid of its own namespace)
      const pids = await until("both sleeps", () => {
        const found = sleepsOf(d.taskId, join(dataDir, "workspaces", d.taskId));
        return found.length === 2 ? found : undefined;
      });
      expect(await executor.cancel(d.taskId)).toBe(true);
      const result = await resultOf(d.taskId);
      expect(result).toMatchObject({ status: "cancelled", error: "cancelled" });
      expect(executor.status(d.taskId)?.status).toBe("cancelled");
      await until("the sleeps to die", () => pids.every(dead));
      expect(await executor.cancel(d.taskId)).toBe(false);
      expect(await executor.cancel("unknown")).toBe(false);
    },
    20_000,
  );

  test("a task that outlives its timeout is stopped and fails naming the timeout", async () => {
    const { executor } = harness();
    const d = dispatch({ command: "sleep 60", timeoutMs: 300 });
    await executor.start(d);
    const result = await resultOf(d.taskId);
    expect(result.status).toBe("failed");
    expect(result.error).toBe("timed out after 300 ms (the task's run timeout)");
  }, 20_000);

  test("at capacity a dispatch gets 429; a duplicate gets 409", async () => {
    const { executor } = harness({ maxConcurrentTasks: 1 });
    const d = dispatch({ command: "sleep 60" });
    await executor.start(d);
    const busy = await executor.start(dispatch({ command: "true" })).catch((e) => e);
    expect(busy).toBeInstanceOf(HttpError);
    expect(busy.status).toBe(429);
    expect(busy.headers["Retry-After"]).toBe("5");
    const dup = await executor.start({ ...d }).catch((e) => e);
    expect(dup.status).toBe(409);
    expect(executor.activeTaskIds()).toEqual([d.taskId]);
    await executor.cancel(d.taskId);
    await resultOf(d.taskId);
    expect((await executor.start({ ...d }).catch((e) => e)).status).toBe(409);
  }, 20_000);

  test("a malformed dispatch is a 400 naming the field", async () => {
    const { executor } = harness();
    const bad = await executor.start({ ...dispatch(), taskId: "../etc" }).catch((e) => e);
    expect(bad.status).toBe(400);
    expect(bad.message).toStartWith("taskId:");
  });

  test("shutdown fails running tasks with 'agent stopping', delivers, and refuses new work", async () => {
    const { executor } = harness();
    const d = dispatch({ command: "sleep 60" });
    await executor.start(d);
    await executor.shutdown();
    expect(edge.results.get(d.taskId)).toMatchObject({ status: "failed", error: "agent stopping" });
    const late = await executor.start(dispatch({ command: "true" })).catch((e) => e);
    expect(late.status).toBe(503);
  }, 20_000);
});

describe("built-in agent tasks", () => {
  test("the model's write_file lands in the workspace and the result says so", async () => {
    const { executor } = harness();
    model.script = [
      { calls: [{ name: "write_file", args: { path: "notes/todo.md", content: "- ship it\n" } }] },
      { text: "Wrote the todo list." },
    ];
    const d = dispatch({ repo: { url: repo }, model: "@cf/test/model" });
    await executor.start(d);
    const result = await resultOf(d.taskId);
    expect(result).toMatchObject({ status: "succeeded", exitCode: 0 });
    expect(result.summary).toBe("Wrote the todo list.\n\nFiles written: notes/todo.md");
    expect(result.diffStat).toContain("notes/todo.md");
    expect(result.patch).toContain("+- ship it");
    expect(model.requests.at(-1)!.model).toBe("@cf/test/model");
    expect(edge.linesOf(d.taskId).some((l) => l.includes("write_file"))).toBe(true);
  }, 20_000);

  test("no upstream configured: the task fails at once with the 503's message", async () => {
    const { executor } = harness();
    model.script = [{ status: 503, message: "no inference upstream is configured" }];
    const d = dispatch();
    const t0 = Date.now();
    await executor.start(d);
    const result = await resultOf(d.taskId);
    expect(result).toMatchObject({
      status: "failed",
      error: "inference failed (503): no inference upstream is configured",
    });
    expect(Date.now() - t0).toBeLessThan(3_000);
  }, 20_000);
});

describe("devcontainer workspaces (fake docker and devcontainer CLIs)", () => {
  function fakeClis(outcome: "success" | "error") {
    const bin = join(base, `bin-${++n}`);
    const record = join(bin, "calls.log");
    mkdirSync(bin);
    writeFileSync(
      join(bin, "devcontainer"),
      `#!/bin/sh
echo "devcontainer $*" >> ${record}
echo '{"type":"progress","text":"pulling image"}'
if [ "${outcome}" = success ]; then
  echo '{"outcome":"success","containerId":"c0ffee","remoteUser":"vscode","remoteWorkspaceFolder":"/workspaces/w"}'
else
  echo '{"outcome":"error","message":"image not found","description":"An error occurred setting up the container."}'
  exit 1
fi
`,
    );
    // docker exec runs the command here, on the host, in the workspace (the agent's cwd for it).
    writeFileSync(
      join(bin, "docker"),
      `#!/bin/sh
echo "docker $*" >> ${record}
if [ "$1" = exec ]; then
  while [ "$1" != c0ffee ]; do shift; done; shift
  echo "forwarded key length: \${#OPENAI_API_KEY}" >> ${record}
  exec "$@"
fi
`,
    );
    chmodSync(join(bin, "devcontainer"), 0o755);
    chmodSync(join(bin, "docker"), 0o755);
    return { env: { ...baseEnv, PATH: `${bin}:${baseEnv.PATH}` }, record };
  }

  test(
    "devcontainer up builds the container (recorded with its duration), the command runs through docker exec, cleanup removes it",
    async () => {
      const clis = fakeClis("success");
      const { executor, events } = harness({ workspaceMode: "auto" }, clis.env);
      const d = dispatch({ repo: { url: repo }, command: "echo in-container >> hello.txt" });
      await executor.start(d);
      const result = await resultOf(d.taskId);
      expect(result).toMatchObject({ status: "succeeded" });
      expect(result.steps!.map((s) => s.name)).toEqual(["clone", "container.build", "agent", "diff"]);
      expect(result.patch).toContain("+in-container");
      const build = events.events.find((e) => e.type === "container.build")!;
      expect(build.message).toMatch(/^devcontainer built in \d+ ms \(base-image\)$/);
      expect((build.detail as { durationMs: number }).durationMs).toBeGreaterThanOrEqual(0);
      await until(
        "the container to be removed",
        () => readFileSync(clis.record, "utf8").includes("docker rm -f c0ffee"),
      );
      const calls = readFileSync(clis.record, "utf8");
      expect(calls).toContain(`devcontainer up --workspace-folder`);
      expect(calls).toContain("--id-label sam.task=" + d.taskId);
      expect(calls).toContain("docker exec -i -w /workspaces/w -u vscode -e SAM_TASK_ID");
      expect(calls).toContain(`forwarded key length: ${"samtask_abc".length}`);
      expect(calls).not.toContain("samtask_abc");
      expect(edge.linesOf(d.taskId)).toContain('{"type":"progress","text":"pulling image"}');
    },
    20_000,
  );

  test("a repo whose devcontainer.json reaches onto the host is refused before devcontainer up runs", async () => {
    const clis = fakeClis("success");
    const hostile = initRepo(join(base, `hostile-repo-${++n}`), {
      ".devcontainer.json":
        '{\n  // read the node\'s tokens\n  "image": "x",\n  "initializeCommand": "cat /etc/sam/tokens",\n  "mounts": ["source=/etc/sam,target=/sam,type=bind"]\n}\n',
    }, baseEnv);
    const { executor } = harness({ workspaceMode: "devcontainer" }, clis.env);
    const d = dispatch({ repo: { url: hostile }, command: "true" });
    await executor.start(d);
    const result = await resultOf(d.taskId);
    expect(result).toMatchObject({ status: "failed" });
    expect(result.error).toBe(
      "the repository's .devcontainer.json sets initializeCommand, mounts, which would reach outside the container onto the node; SAM refuses it (remove them, or let the task use the configured base image)",
    );
    expect(existsSync(clis.record) ? readFileSync(clis.record, "utf8") : "").not.toContain("devcontainer up");
  }, 20_000);

  test("while the boot still installs the CLI, devcontainer is offered and a task waits for the CLI", async () => {
    const clis = fakeClis("success");
    // The CLI is not there yet: the boot's install is still running (its marker exists).
    const cli = join(dirname(clis.record), "devcontainer");
    renameSync(cli, `${cli}.later`);
    const marker = join(base, `pending-${++n}`);
    writeFileSync(marker, "installing\n");
    expect(workCapabilities({ ...WORK_DEFAULTS, devcontainerCliPending: marker }, clis.env).workspaceModes).toEqual([
      "devcontainer",
      "host",
    ]);
    expect(workCapabilities({ ...WORK_DEFAULTS, devcontainerCliPending: null }, clis.env).workspaceModes).toEqual([
      "host",
    ]);
    const { executor } = harness({ workspaceMode: "auto", devcontainerCliPending: marker }, clis.env);
    const d = dispatch({ command: "echo waited >> hello.txt" });
    await executor.start(d);
    await until(
      "the task to wait for the CLI",
      () => edge.linesOf(d.taskId).includes("waiting for the boot to finish installing the devcontainer CLI"),
    );
    expect(existsSync(clis.record) ? readFileSync(clis.record, "utf8") : "").not.toContain("devcontainer up");
    // The install ends: the CLI appears, then the marker goes.
    renameSync(`${cli}.later`, cli);
    rmSync(marker);
    const result = await resultOf(d.taskId);
    expect(result).toMatchObject({ status: "succeeded" });
    expect(readFileSync(clis.record, "utf8")).toContain("devcontainer up");
  }, 20_000);

  test("an install that ends without the CLI fails the waiting task with the reason", async () => {
    const clis = fakeClis("success");
    rmSync(join(dirname(clis.record), "devcontainer"));
    const marker = join(base, `pending-${++n}`);
    writeFileSync(marker, "installing\n");
    const { executor } = harness({ workspaceMode: "devcontainer", devcontainerCliPending: marker }, clis.env);
    const d = dispatch({ command: "true" });
    await executor.start(d);
    await until(
      "the task to wait for the CLI",
      () => edge.linesOf(d.taskId).includes("waiting for the boot to finish installing the devcontainer CLI"),
    );
    rmSync(marker);
    const result = await resultOf(d.taskId);
    expect(result).toMatchObject({
      status: "failed",
      error:
        "the devcontainer CLI install ended without the CLI (see the devcontainer-cli phase of the node's boot timeline)",
    });
  }, 20_000);

  test("a failed devcontainer build fails the task with the CLI's message", async () => {
    const clis = fakeClis("error");
    const { executor, events } = harness({ workspaceMode: "devcontainer" }, clis.env);
    const d = dispatch({ command: "true" });
    await executor.start(d);
    const result = await resultOf(d.taskId);
    expect(result).toMatchObject({ status: "failed", error: "devcontainer up failed: image not found" });
    expect(events.events.find((e) => e.type === "container.build")).toMatchObject({ level: "error" });
  }, 20_000);
});

describe("agent restart mid-task", () => {
  test.each(["on", "off"] as const)(
    "a task whose agent process died is reported failed on the next start, and none of its processes survive (sandbox %s)",
    async (mode) => {
      const dataDir = join(base, `restart-${mode}`);
      const script = join(base, `first-life-${mode}.ts`);
      const executorPath = join(import.meta.dir, "executor.ts");
      const sandbox = { ...SANDBOX_DEFAULTS, mode };
      const d = dispatch({ command: "setsid sleep 61 </dev/null >/dev/null 2>&1 & sleep 60 & echo started; wait" });
      writeFileSync(
        script,
        `
      import { createTaskExecutor } from ${JSON.stringify(executorPath)};
      import { WORK_DEFAULTS } from ${JSON.stringify(join(import.meta.dir, "config.ts"))};
      const ex = createTaskExecutor({
        config: { ...WORK_DEFAULTS, dataDir: ${JSON.stringify(dataDir)}, workspaceMode: "host", sandbox: ${
          JSON.stringify(sandbox)
        } },
        events: { record() {} },
        controlPlane: { post: (p, b) => fetch(${
          JSON.stringify(edge.url)
        } + p, { method: "POST", headers: { authorization: "Bearer ${edge.token}", "content-type": "application/json" }, body: JSON.stringify(b) }) },
        env: ${JSON.stringify(baseEnv)},
      });
      await ex.start(${JSON.stringify(d)});
      setInterval(() => {}, 1000);
    `,
      );
      const first = Bun.spawn([process.execPath, script], { stdout: "ignore", stderr: "inherit" });
      try {
        await until("the task's output", () => edge.linesOf(d.taskId).includes("started"), 10_000);
        const pids = await until("both sleeps", () => {
          const found = sleepsOf(d.taskId, join(dataDir, "workspaces", d.taskId));
          return found.length === 2 ? found : undefined;
        });
        first.kill("SIGKILL");
        await first.exited;
        const { executor } = (() => {
          const events = memoryRecorder();
          const executor = createTaskExecutor({
            config: { ...WORK_DEFAULTS, dataDir, workspaceMode: "host", sandbox },
            events,
            controlPlane: fetchControlPlane(edge.url, edge.token),
            env: baseEnv,
          });
          executors.push(executor);
          return { executor };
        })();
        const result = await resultOf(d.taskId);
        expect(result).toMatchObject({ status: "failed", error: RESTART_REASON });
        expect(executor.status(d.taskId)).toMatchObject({ status: "failed" });
        // Unsandboxed, the restarted agent finds and kills them; in the sandbox they died with the first agent.
        if (mode === "off") {
          expect(edge.linesOf(d.taskId).at(-1)).toBe(`${RESTART_REASON} (its leftover processes were killed)`);
        } else expect(edge.linesOf(d.taskId).at(-1)).toStartWith(RESTART_REASON);
        await until("the task's processes to die", () => pids.every(dead));
      } finally {
        first.kill("SIGKILL");
      }
    },
    20_000,
  );
});

test("over-long text fields are cut to the wire's limit, keeping what matters", async () => {
  const { clampResult } = await import("./executor.ts");
  const { TaskResult } = await import("../../shared/wire/task.ts");
  const v = await import("valibot");
  const long = Array.from({ length: 20_000 }, (_, i) => ` file${i}.txt | 1 +`).join("\n") +
    "\n 20000 files changed, 20000 insertions(+)";
  const r = clampResult({
    status: "succeeded",
    exitCode: 0,
    summary: "x".repeat(70_000) + "THE END",
    diffStat: long,
    steps: [],
    finishedAt: 1,
  });
  expect(v.safeParse(TaskResult, r).success).toBe(true);
  expect(r.summary).toEndWith("THE END");
  expect(r.diffStat).toEndWith("20000 files changed, 20000 insertions(+)");
});
