/**
 * The agent's `TaskExecutor`: accepts a dispatched task, prepares its workspace (clone, devcontainer), runs
 * the coding agent (a command, or the built-in loop), collects the change, and hands everything to delivery.
 * `start` answers as soon as the run is registered, so the edge sees `running` without waiting for a clone.
 *
 * Runs are recorded in the durable outbox before they start: a run the agent finds still `running` on its
 * next start was lost with the previous process, and is reported failed with that reason (its stray
 * process group, if any survived, is killed, and so is every other process that carries its task id).
 *
 * Host-mode commands run in the task sandbox (sandbox/, docs/sandbox.md); a node that cannot run one
 * refuses host-mode tasks unless the operator turned the sandbox off.
 */
import { nodeFs, nodePath } from "../runtime/lazy-node-modules.ts";
import type { Env } from "../../shared/env.ts";
import { HttpError } from "../../shared/errors.ts";
import { parseOrThrow } from "../../shared/validate.ts";
import { EVENT_TYPES } from "../../shared/wire/events.ts";
import { TaskDispatch, type TaskLogEvent, type TaskResult, type TaskStep } from "../../shared/wire/task.ts";
import type { ControlPlane, EventRecorder, TaskExecutor, TaskRunState } from "../contracts.ts";
import { createToolBox } from "./builtin/tools.ts";
import { repoCredentialNames, scrubbedEnv, taskEnv } from "./child-env.ts";
import type { WorkConfig } from "./config.ts";
import { Delivery } from "./delivery.ts";
import { cloneRepo, collectChange } from "./git.ts";
import { handOff } from "./handoff/index.ts";
import { Outbox } from "./outbox.ts";
import { signalGroup } from "./process-group.ts";
import { probeSandbox, reapTask, reclaimWorkspace } from "./sandbox/index.ts";
import { hardenedGitEnv, restoreGitDir, snapshotGitConfig } from "./sandbox/repo-guard.ts";
import {
  awaitDevcontainerCli,
  buildDevcontainer,
  chooseMode,
  createWorkspaceDirs,
  devcontainerCliPending,
  execInWorkspace,
  removeWorkspace,
  type Workspace,
  workspacePaths,
} from "./workspace.ts";

export type TaskExecutorDeps = {
  config: WorkConfig;
  events: EventRecorder;
  controlPlane: ControlPlane;
  /** The agent's environment; what tasks see is derived from it with the agent's secrets removed. */
  env?: Env;
};

type StopReason = "cancel" | "timeout" | "shutdown";

type ActiveRun = {
  state: TaskRunState;
  controller: AbortController;
  reason: StopReason | null;
  done: Promise<void>;
};

const SUMMARY_LINES = 20;
const SHUTDOWN_FLUSH_MS = 5_000;
export const RESTART_REASON = "the agent restarted while this task was running; its process was lost";

function stateOf(
  row: {
    taskId: string;
    status: TaskRunState["status"];
    startedAt: number;
    finishedAt: number | null;
    exitCode: number | null;
  },
): TaskRunState {
  return {
    taskId: row.taskId,
    status: row.status,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
    exitCode: row.exitCode,
  };
}

/** The wire caps text fields at 64 KiB; an edge would refuse the whole result over one long summary. */
const TEXT_CAP = 65_536;
function clampText(text: string | undefined, keep: "head" | "tail"): string | undefined {
  if (text === undefined || text.length <= TEXT_CAP) return text;
  const note = "\n[… cut to fit]\n";
  return keep === "head" ? text.slice(0, TEXT_CAP - note.length) + note : note + text.slice(-(TEXT_CAP - note.length));
}

export function clampResult(r: TaskResult): TaskResult {
  // A diff stat's last line is its total; a summary's end is its conclusion.
  return {
    ...r,
    summary: clampText(r.summary, "tail"),
    error: clampText(r.error, "head"),
    diffStat: clampText(r.diffStat, "tail"),
  };
}

/** The process group a lost run left behind, if it is still alive and still working in that workspace. */
function strayGroup(metaDir: string, workspaceDir: string): number | null {
  const file = nodePath().join(metaDir, "pgid");
  if (!nodeFs().existsSync(file)) return null;
  const pgid = Number(nodeFs().readFileSync(file, "utf8"));
  if (!Number.isInteger(pgid) || pgid <= 1) return null;
  try {
    // A recycled pid would work elsewhere: only a process whose cwd is this workspace is ours.
    return nodeFs().readlinkSync(`/proc/${pgid}/cwd`).startsWith(workspaceDir) ? pgid : null;
  } catch {
    return null;
  }
}

export function createTaskExecutor(deps: TaskExecutorDeps): TaskExecutor {
  const { config, events } = deps;
  const baseEnv: Env = deps.env ?? process.env;
  const toolEnv = scrubbedEnv(baseEnv);
  const outbox = new Outbox(config.dataDir);
  const active = new Map<string, ActiveRun>();
  let accepting = true;

  const cleanup = async (taskId: string) => {
    const run = outbox.run(taskId);
    if (!run || run.cleaned) return;
    const paths = workspacePaths(config.dataDir, taskId);
    if (run.status === "failed" && config.keepOnFailure) {
      events.record({
        type: EVENT_TYPES.workspaceCleanup,
        taskId,
        message: `workspace kept for inspection (failed task): ${paths.dir}`,
      });
    } else {
      try {
        await removeWorkspace(paths, toolEnv);
        events.record({ type: EVENT_TYPES.workspaceCleanup, taskId, message: "workspace removed" });
      } catch (err) {
        events.record({
          type: EVENT_TYPES.error,
          level: "error",
          taskId,
          message: `workspace cleanup failed: ${(err as Error).message}`,
        });
        return;
      }
    }
    outbox.markCleaned(taskId);
  };

  const delivery = new Delivery({
    outbox,
    controlPlane: deps.controlPlane,
    events,
    onDelivered: (taskId) => void cleanup(taskId),
  });

  const log = (taskId: string, stream: TaskLogEvent["stream"], message: string) => {
    const line = outbox.appendLine(taskId, stream, message);
    events.record({
      type: EVENT_TYPES.taskOutput,
      taskId,
      message,
      level: stream === "stderr" ? "warn" : "info",
      detail: { seq: line.seq, stream },
    });
    delivery.kick(taskId);
  };

  const finish = (taskId: string, unclamped: TaskResult) => {
    const result = clampResult(unclamped);
    outbox.finish(taskId, result);
    events.record({
      type: EVENT_TYPES.taskStep,
      taskId,
      level: result.status === "succeeded" ? "info" : "warn",
      message: `task ${result.status}${result.error ? `: ${result.error}` : ""}`,
      detail: { exitCode: result.exitCode },
    });
    delivery.kick(taskId);
  };

  // A run still marked running was lost with the previous agent process.
  for (const lost of outbox.runsWithStatus("running")) {
    const paths = workspacePaths(config.dataDir, lost.taskId);
    const stray = strayGroup(paths.metaDir, paths.dir);
    if (stray) signalGroup(stray, "SIGKILL");
    const reaped = reapTask(lost.taskId, paths.dir);
    log(
      lost.taskId,
      "system",
      `${RESTART_REASON}${stray || reaped > 0 ? " (its leftover processes were killed)" : ""}`,
    );
    finish(lost.taskId, { status: "failed", exitCode: null, error: RESTART_REASON, steps: [], finishedAt: Date.now() });
  }
  for (const run of outbox.undelivered()) delivery.kick(run.taskId);
  for (const run of outbox.uncleaned()) void cleanup(run.taskId);

  async function execute(dispatch: TaskDispatch, run: ActiveRun): Promise<TaskResult> {
    const { taskId } = dispatch;
    const signal = run.controller.signal;
    const steps: TaskStep[] = [];
    const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
      const startedAt = Date.now();
      try {
        return await fn();
      } finally {
        const endedAt = Date.now();
        steps.push({ name, startedAt, endedAt, durationMs: endedAt - startedAt });
        events.record({
          type: EVENT_TYPES.taskStep,
          taskId,
          message: `${name} took ${endedAt - startedAt} ms`,
          detail: { step: name, durationMs: endedAt - startedAt },
        });
      }
    };
    const sys = (m: string) => log(taskId, "system", m);
    const failed = (error: string, exitCode: number | null = null): TaskResult => {
      const status = run.reason === "cancel" ? "cancelled" : "failed";
      const why = run.reason === "cancel"
        ? "cancelled"
        : run.reason === "timeout"
        ? `timed out after ${dispatch.timeoutMs} ms (the task's run timeout)`
        : run.reason === "shutdown"
        ? "agent stopping"
        : error;
      return { status, exitCode, error: why, steps, finishedAt: Date.now() };
    };

    const paths = createWorkspaceDirs(config.dataDir, taskId);
    const mode = chooseMode(config.workspaceMode, baseEnv.PATH, devcontainerCliPending(config.devcontainerCliPending));
    const sandbox = mode === "host" ? probeSandbox(config.sandbox, baseEnv.PATH) : null;
    if (sandbox?.state === "unavailable") return failed(sandbox.message);
    const ws: Workspace = {
      taskId,
      ...paths,
      mode,
      container: null,
      sandbox: sandbox && {
        taskId,
        workspace: paths.dir,
        config: config.sandbox,
        status: sandbox,
        secrets: [config.dataDir, ...(baseEnv.SAM_TOKEN_FILE ? [baseEnv.SAM_TOKEN_FILE] : [])],
      },
    };
    events.record({
      type: EVENT_TYPES.workspaceCreate,
      taskId,
      workspaceId: taskId,
      message: `workspace created (${mode}${
        sandbox ? `, sandbox ${sandbox.state === "ready" ? "bubblewrap" : "off"}` : ""
      })`,
      detail: { dir: paths.dir, mode },
    });

    let base: string | null = null;
    if (dispatch.repo) {
      const repo = dispatch.repo;
      sys(
        `cloning ${repo.url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, "$1***@")}${
          repo.branch ? ` (branch ${repo.branch})` : ""
        }`,
      );
      const cloned = await step(
        "clone",
        () =>
          cloneRepo({
            url: repo.url,
            branch: repo.branch,
            credential: repo.credential,
            dir: paths.dir,
            metaDir: paths.metaDir,
            env: toolEnv,
            signal,
            onLine: (_s, l) => sys(l),
          }),
      );
      if (!cloned.ok) return failed(cloned.error);
      base = cloned.head;
      snapshotGitConfig(paths.dir, paths.metaDir);
    }

    if (mode === "devcontainer") {
      const missing = await awaitDevcontainerCli(baseEnv.PATH, config.devcontainerCliPending, {
        signal,
        onWait: () => sys("waiting for the boot to finish installing the devcontainer CLI"),
      });
      if (missing) return failed(missing);
      sys("building the devcontainer");
      const built = await step(
        "container.build",
        () =>
          buildDevcontainer({ taskId, ...paths }, {
            baseImage: config.baseImage,
            env: toolEnv,
            signal,
            onLine: (_s, l) => sys(l),
          }),
      );
      events.record({
        type: EVENT_TYPES.containerBuild,
        taskId,
        workspaceId: taskId,
        level: built.ok ? "info" : "error",
        message: built.ok ? `devcontainer built in ${built.durationMs} ms (${built.config})` : built.error,
        detail: { durationMs: built.durationMs, ok: built.ok, config: built.ok ? built.config : null },
      });
      if (!built.ok) return failed(built.error);
      ws.container = built.container;
      sys(`devcontainer ready in ${built.durationMs} ms`);
    }

    const model = dispatch.model ?? config.defaultModel;
    const env = taskEnv(baseEnv, dispatch, model, { exposeRepoCredential: config.exposeRepoCredential });
    const forward = [
      "SAM_TASK_ID",
      "SAM_TASK_PROMPT",
      "OPENAI_BASE_URL",
      "OPENAI_API_KEY",
      "OPENAI_MODEL",
      "GIT_TERMINAL_PROMPT",
      ...repoCredentialNames(env),
    ];
    const pgidFile = nodePath().join(paths.metaDir, "pgid");
    const onSpawn = (pgid: number) => nodeFs().writeFileSync(pgidFile, String(pgid));

    let outcome: { ok: boolean; exitCode: number | null; summary?: string; error?: string };
    if (dispatch.agent.type === "command") {
      const command = dispatch.agent.command;
      const tail: string[] = [];
      const ran = await step("agent", () =>
        execInWorkspace(ws, command, {
          env,
          forward,
          signal,
          killGraceMs: config.killGraceMs,
          onSpawn,
          onLine: (stream, line) => {
            if (stream === "stdout") {
              tail.push(line);
              if (tail.length > SUMMARY_LINES) tail.shift();
            }
            log(taskId, stream, line);
          },
        }));
      sys(ran.exitCode === null ? `command killed by ${ran.signalCode}` : `command exited with code ${ran.exitCode}`);
      outcome = {
        ok: ran.exitCode === 0 && !ran.aborted,
        exitCode: ran.exitCode,
        summary: tail.join("\n").slice(-8_000) || undefined,
        error: ran.exitCode === null
          ? `command killed by ${ran.signalCode}`
          : `command exited with code ${ran.exitCode}`,
      };
    } else {
      const tools = await createToolBox(
        paths.dir,
        (command, o) =>
          execInWorkspace(ws, command, {
            env,
            forward,
            signal: o.signal,
            timeoutMs: o.timeoutMs,
            killGraceMs: config.killGraceMs,
            onSpawn,
            onLine: (s, l) => {
              o.onLine(s, l);
              log(taskId, s, l);
            },
          }),
        config.commandTimeoutMs,
      );
      // Loaded on first use: the `openai` client is the largest module in the binary, and most nodes run
      // command tasks or sit idle (an idle agent must not pay for them: docs/agent.md § Memory).
      const { runBuiltinAgent } = await import("./builtin/loop.ts");
      const res = await step("agent", () =>
        runBuiltinAgent({
          baseUrl: dispatch.inference.baseUrl,
          apiKey: dispatch.inference.token,
          model,
          prompt: dispatch.prompt,
          tools,
          maxSteps: config.maxSteps,
          signal,
          log: sys,
        }));
      const wrote = tools.written.length > 0 ? `\n\nFiles written: ${[...new Set(tools.written)].join(", ")}` : "";
      outcome = res.ok
        ? { ok: true, exitCode: 0, summary: res.summary + wrote }
        : { ok: false, exitCode: null, error: res.error };
    }
    if (nodeFs().existsSync(pgidFile)) nodeFs().unlinkSync(pgidFile);
    if (ws.sandbox) await reclaimWorkspace(ws.sandbox);

    let change: Partial<TaskResult> = {};
    let collected = false;
    if (base) {
      try {
        // The task could write .git; git must not run what it planted there (sandbox/repo-guard.ts).
        restoreGitDir(paths.dir, paths.metaDir);
        const c = await step(
          "diff",
          () => collectChange(paths.dir, hardenedGitEnv(toolEnv), base, config.patchMaxBytes),
        );
        change = { diffStat: c.diffStat, patch: c.patch, patchTruncated: c.patchTruncated };
        if (c.diffStat) sys(c.diffStat.split("\n").pop() ?? "");
        collected = true;
      } catch (err) {
        sys(`could not collect the change: ${(err as Error).message}`);
      }
    }
    if (!outcome.ok || run.reason) {
      return { ...failed(outcome.error ?? "failed", outcome.exitCode), summary: outcome.summary, ...change };
    }
    const succeeded: TaskResult = {
      status: "succeeded",
      exitCode: outcome.exitCode,
      summary: outcome.summary,
      steps,
      finishedAt: Date.now(),
      ...change,
    };
    const repo = dispatch.repo;
    if (!base || !repo?.push) return succeeded;
    // A workspace whose change could not be read (the task broke or replaced its .git) is not pushed.
    if (!collected) {
      return {
        ...succeeded,
        delivery: {
          status: "skipped",
          reason: "the change could not be collected from the workspace, so nothing was pushed",
        },
      };
    }
    const delivery = await handOff({
      taskId,
      prompt: dispatch.prompt,
      repo: { ...repo, push: repo.push },
      dir: paths.dir,
      metaDir: paths.metaDir,
      base,
      env: hardenedGitEnv(toolEnv),
      config,
      deadlineAt: run.state.startedAt + dispatch.timeoutMs,
      signal,
      log: sys,
      step,
    });
    return { ...succeeded, delivery, finishedAt: Date.now() };
  }

  return {
    async start(input) {
      const dispatch = parseOrThrow(TaskDispatch, input);
      if (!accepting) {
        throw new HttpError(503, "this agent is stopping; dispatch the task to another node", {
          code: "agent_stopping",
        });
      }
      if (active.has(dispatch.taskId) || outbox.run(dispatch.taskId)) {
        throw new HttpError(409, `task ${dispatch.taskId} was already dispatched to this node`, {
          code: "duplicate_task",
        });
      }
      if (active.size >= config.maxConcurrentTasks) {
        throw new HttpError(
          429,
          `this node is already running ${active.size} tasks (SAM_MAX_CONCURRENT_TASKS=${config.maxConcurrentTasks})`,
          {
            code: "node_at_capacity",
            headers: { "Retry-After": "5" },
          },
        );
      }
      const startedAt = Date.now();
      const { dir } = workspacePaths(config.dataDir, dispatch.taskId);
      outbox.createRun(dispatch.taskId, startedAt, dir);
      const state: TaskRunState = {
        taskId: dispatch.taskId,
        status: "running",
        startedAt,
        finishedAt: null,
        exitCode: null,
      };
      const run: ActiveRun = { state, controller: new AbortController(), reason: null, done: Promise.resolve() };
      active.set(dispatch.taskId, run);
      const timer = setTimeout(() => {
        run.reason ??= "timeout";
        run.controller.abort();
      }, dispatch.timeoutMs);
      run.done = (async () => {
        let result: TaskResult;
        try {
          result = await execute(dispatch, run);
        } catch (err) {
          events.record({
            type: EVENT_TYPES.error,
            level: "error",
            taskId: dispatch.taskId,
            message: `task run failed: ${(err as Error).message}`,
          });
          result = {
            status: run.reason === "cancel" ? "cancelled" : "failed",
            exitCode: null,
            error: `the agent could not run the task: ${(err as Error).message}`,
            steps: [],
            finishedAt: Date.now(),
          };
        }
        clearTimeout(timer);
        if (result.error) log(dispatch.taskId, "system", `task ${result.status}: ${result.error}`);
        else log(dispatch.taskId, "system", `task ${result.status}`);
        finish(dispatch.taskId, result);
        Object.assign(state, { status: result.status, finishedAt: result.finishedAt, exitCode: result.exitCode });
        active.delete(dispatch.taskId);
      })();
      return { ...state };
    },

    status(taskId) {
      const run = active.get(taskId);
      if (run) return { ...run.state };
      const row = outbox.run(taskId);
      return row ? stateOf(row) : null;
    },

    async cancel(taskId) {
      const run = active.get(taskId);
      if (!run) return false;
      run.reason ??= "cancel";
      run.controller.abort();
      await Promise.race([run.done, Bun.sleep(config.killGraceMs + 2_000)]);
      return true;
    },

    activeTaskIds() {
      return [...active.keys()];
    },

    async shutdown() {
      accepting = false;
      const runs = [...active.values()];
      for (const run of runs) {
        run.reason ??= "shutdown";
        run.controller.abort();
      }
      await Promise.race([Promise.all(runs.map((r) => r.done)), Bun.sleep(config.killGraceMs + 2_000)]);
      await delivery.waitIdle(SHUTDOWN_FLUSH_MS);
      delivery.stop();
      outbox.close();
    },
  };
}
