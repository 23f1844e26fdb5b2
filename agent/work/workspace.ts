/**
 * A task's workspace: a directory under the agent's data dir (`workspaces/<task>`, with a private sibling
 * `workspace-meta/<task>` for helper files that must not show up in the repo's diff), where commands run
 * either directly on the host or inside a devcontainer built with `devcontainer up`.
 */
import { nodeFs, nodePath } from "../runtime/lazy-node-modules.ts";
import type { WorkspaceMode } from "../../shared/wire/agent.ts";
import type { WorkspaceModeSetting } from "./config.ts";
import { type GroupRun, type LineSink, runInGroup } from "./process-group.ts";
import { runSandboxed, type TaskSandbox } from "./sandbox/index.ts";
import { devcontainerRefusal } from "./devcontainer-policy.ts";

export type ExecOptions = {
  env: Record<string, string>;
  /** Names from `env` a containerised command must see too (passed by name, so values stay off argv). */
  forward: string[];
  onLine: LineSink;
  timeoutMs?: number;
  signal?: AbortSignal;
  killGraceMs?: number;
  onSpawn?: (pgid: number) => void;
};

export type Container = { id: string; remoteUser: string | null; remoteWorkspaceFolder: string };

export type Workspace = {
  taskId: string;
  dir: string;
  metaDir: string;
  mode: WorkspaceMode;
  container: Container | null;
  /** Host mode: the sandbox every command of the task runs in (docs/sandbox.md). */
  sandbox?: TaskSandbox | null;
};

export function workspacePaths(dataDir: string, taskId: string): { dir: string; metaDir: string } {
  return {
    dir: nodePath().join(dataDir, "workspaces", taskId),
    metaDir: nodePath().join(dataDir, "workspace-meta", taskId),
  };
}

export function createWorkspaceDirs(dataDir: string, taskId: string): { dir: string; metaDir: string } {
  const p = workspacePaths(dataDir, taskId);
  nodeFs().mkdirSync(p.dir, { recursive: true, mode: 0o755 });
  nodeFs().mkdirSync(p.metaDir, { recursive: true, mode: 0o700 });
  return p;
}

/** Whether an executable is on PATH (for `auto` mode and the capabilities in the ready callback). */
export function onPath(name: string, path: string | undefined): boolean {
  // Bun's own lookup: this runs at start, where node:fs would cost the idle agent RSS (runtime/lazy-node-modules.ts).
  return !!path && Bun.which(name, { PATH: path }) !== null;
}

/**
 * Whether the boot is still installing the devcontainer CLI: it writes a non-empty marker file before the
 * install and removes it when the install ends, either way (cloud-init/boot-plan.ts). A size check, because
 * Bun has no synchronous exists() and node:fs would cost the idle agent RSS.
 */
export function devcontainerCliPending(marker: string | null): boolean {
  return !!marker && Bun.file(marker).size > 0;
}

/**
 * The modes this node can offer: host always; devcontainer when Docker is there and the devcontainer CLI is
 * installed or still being installed by the boot (a task then waits for it: `awaitDevcontainerCli`).
 */
export function availableModes(path: string | undefined, cliPending = false): WorkspaceMode[] {
  return onPath("docker", path) && (onPath("devcontainer", path) || cliPending) ? ["devcontainer", "host"] : ["host"];
}

export function chooseMode(setting: WorkspaceModeSetting, path: string | undefined, cliPending = false): WorkspaceMode {
  if (setting !== "auto") return setting;
  return availableModes(path, cliPending)[0]!;
}

/**
 * Wait until the devcontainer CLI is on PATH while the boot still installs it (the agent starts before that
 * install, so a node is ready sooner). Resolves null once the CLI is there, else why it will not be: the
 * install ended without it, or the task was cancelled meanwhile. `onWait` is called once, when waiting starts.
 */
export async function awaitDevcontainerCli(
  path: string | undefined,
  marker: string | null,
  opts: { signal?: AbortSignal; onWait?: () => void; pollMs?: number } = {},
): Promise<string | null> {
  let waiting = false;
  for (;;) {
    if (onPath("devcontainer", path)) return null;
    if (!devcontainerCliPending(marker)) {
      return waiting
        ? "the devcontainer CLI install ended without the CLI (see the devcontainer-cli phase of the node's boot timeline)"
        : "the devcontainer CLI is not installed on this node";
    }
    if (opts.signal?.aborted) return "cancelled while waiting for the devcontainer CLI";
    if (!waiting) opts.onWait?.();
    waiting = true;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, opts.pollMs ?? 500);
      function done() {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", done);
        resolve();
      }
      opts.signal?.addEventListener("abort", done, { once: true });
    });
  }
}

/** The repo's own devcontainer.json, or null when it has none (then the configured base image is used). */
export function repoDevcontainerConfig(dir: string): string | null {
  for (const rel of [".devcontainer/devcontainer.json", ".devcontainer.json"]) {
    if (nodeFs().existsSync(nodePath().join(dir, rel))) return nodePath().join(dir, rel);
  }
  return null;
}

const UpOutcome = (
  line: string,
): {
  outcome?: string;
  containerId?: string;
  remoteUser?: string;
  remoteWorkspaceFolder?: string;
  message?: string;
  description?: string;
} | null => {
  try {
    const o = JSON.parse(line);
    return o && typeof o === "object" && "outcome" in o ? o : null;
  } catch {
    return null;
  }
};

export type BuildResult =
  | { ok: true; container: Container; durationMs: number; config: "repo" | "base-image" }
  | { ok: false; error: string; durationMs: number };

/**
 * `devcontainer up` for the workspace: the repo's devcontainer.json when it has one, else a generated one
 * (in the meta dir) naming the base image. The CLI's last stdout line is its JSON outcome.
 */
export async function buildDevcontainer(
  ws: { taskId: string; dir: string; metaDir: string },
  opts: { baseImage: string; env: Record<string, string>; onLine: LineSink; signal?: AbortSignal; timeoutMs?: number },
): Promise<BuildResult> {
  const own = repoDevcontainerConfig(ws.dir);
  if (own) {
    const refused = devcontainerRefusal(nodeFs().readFileSync(own, "utf8"), nodePath().relative(ws.dir, own));
    if (refused) return { ok: false, error: refused, durationMs: 0 };
  }
  const argv = [
    "devcontainer",
    "up",
    "--workspace-folder",
    ws.dir,
    "--id-label",
    `sam.task=${ws.taskId}`,
    "--log-format",
    "json",
  ];
  if (!own) {
    const generated = nodePath().join(ws.metaDir, "devcontainer.json");
    nodeFs().writeFileSync(generated, JSON.stringify({ name: `sam-${ws.taskId}`, image: opts.baseImage }, null, 2));
    argv.push("--config", generated);
  }
  let outcome: ReturnType<typeof UpOutcome> = null;
  const run = await runInGroup(argv, {
    cwd: ws.metaDir,
    env: opts.env,
    signal: opts.signal,
    timeoutMs: opts.timeoutMs,
    onLine: (stream, line) => {
      const o = stream === "stdout" ? UpOutcome(line) : null;
      if (o) outcome = o;
      else opts.onLine(stream, line);
    },
  });
  const o = outcome as ReturnType<typeof UpOutcome>;
  if (run.exitCode === 0 && o?.outcome === "success" && o.containerId) {
    // Kept beside the workspace so cleanup finds the container even after an agent restart.
    nodeFs().writeFileSync(nodePath().join(ws.metaDir, "container-id"), o.containerId);
    return {
      ok: true,
      durationMs: run.durationMs,
      config: own ? "repo" : "base-image",
      container: {
        id: o.containerId,
        remoteUser: o.remoteUser ?? null,
        remoteWorkspaceFolder: o.remoteWorkspaceFolder ?? `/workspaces/${ws.taskId}`,
      },
    };
  }
  const why = run.timedOut
    ? "timed out"
    : run.aborted
    ? "cancelled"
    : o?.message ?? o?.description ?? `exit ${run.exitCode}`;
  return { ok: false, error: `devcontainer up failed: ${why}`, durationMs: run.durationMs };
}

/** Run a shell command in the workspace, on the host or in its container, as its own process group. */
export function execInWorkspace(ws: Workspace, command: string, opts: ExecOptions): Promise<GroupRun> {
  if (!ws.container && ws.sandbox) {
    return runSandboxed(ws.sandbox, command, {
      env: opts.env,
      onLine: opts.onLine,
      timeoutMs: opts.timeoutMs,
      signal: opts.signal,
      killGraceMs: opts.killGraceMs,
      onSpawn: opts.onSpawn,
    });
  }
  if (!ws.container) {
    return runInGroup(["sh", "-c", command], {
      cwd: ws.dir,
      env: opts.env,
      onLine: opts.onLine,
      timeoutMs: opts.timeoutMs,
      signal: opts.signal,
      killGraceMs: opts.killGraceMs,
      onSpawn: opts.onSpawn,
    });
  }
  const c = ws.container;
  // `-e NAME` without a value makes docker read it from its own environment: secrets never touch argv.
  const argv = ["docker", "exec", "-i", "-w", c.remoteWorkspaceFolder];
  if (c.remoteUser) argv.push("-u", c.remoteUser);
  for (const name of opts.forward) argv.push("-e", name);
  argv.push(c.id, "sh", "-c", command);
  return runInGroup(argv, {
    cwd: ws.dir,
    env: opts.env,
    onLine: opts.onLine,
    timeoutMs: opts.timeoutMs,
    signal: opts.signal,
    killGraceMs: opts.killGraceMs,
    onSpawn: opts.onSpawn,
  });
}

/** Remove the container (if one was built) and both directories. Idempotent. */
export async function removeWorkspace(
  ws: { dir: string; metaDir: string },
  env: Record<string, string>,
): Promise<void> {
  const idFile = nodePath().join(ws.metaDir, "container-id");
  if (nodeFs().existsSync(idFile)) {
    const id = nodeFs().readFileSync(idFile, "utf8").trim();
    const p = Bun.spawn(["docker", "rm", "-f", id], { env, stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    await p.exited;
  }
  nodeFs().rmSync(ws.dir, { recursive: true, force: true });
  nodeFs().rmSync(ws.metaDir, { recursive: true, force: true });
}
