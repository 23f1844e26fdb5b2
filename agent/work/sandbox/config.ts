/**
 * Settings of the host-mode task sandbox, read from the agent's environment (docs/sandbox.md). The sandbox is
 * on unless the operator turns it off by name; the limits are per process of the task (rlimits), except the
 * process count, which the kernel counts per uid.
 */
import { ConfigError, type Env, envChoice, envDuration, envInt, envString } from "../../../shared/env.ts";

export type SandboxLimits = {
  /** RLIMIT_NPROC: processes of the task's uid, machine-wide. */
  processes: number;
  /** RLIMIT_NOFILE: open files per process. */
  openFiles: number;
  /** RLIMIT_AS: address space per process, in bytes; null for none. */
  memoryBytes: number | null;
  /** RLIMIT_CPU: CPU seconds per process; null for none. */
  cpuSeconds: number | null;
};

export type SandboxConfig = {
  /** `on`: host-mode tasks run under bubblewrap or not at all. `off`: unsandboxed (unsafe, documented). */
  mode: "on" | "off";
  /** The unprivileged uid/gid a task runs as when the agent is root. */
  uid: number;
  gid: number;
  limits: SandboxLimits;
  /**
   * Host directories a task may read and run, bound read-only at the same path (`SAM_TASK_TOOL_PATHS`): where
   * an operator installed coding-agent CLIs outside /usr, e.g. /opt/agents. Never the agent's data dir.
   */
  toolPaths: string[];
};

export const SANDBOX_DEFAULTS: SandboxConfig = {
  mode: "on",
  uid: 65534,
  gid: 65534,
  limits: { processes: 512, openFiles: 4096, memoryBytes: 4 * 1024 ** 3, cpuSeconds: 3600 },
  toolPaths: [],
};

/** `SAM_TASK_TOOL_PATHS`: colon-separated absolute directories. */
function envToolPaths(env: Env): string[] {
  const raw = envString(env, "SAM_TASK_TOOL_PATHS");
  if (raw === undefined) return [];
  const paths = raw.split(":").map((p) => p.trim()).filter(Boolean);
  const bad = paths.find((p) => !p.startsWith("/") || p.split("/").includes("..") || p === "/");
  if (bad !== undefined) {
    throw new ConfigError(`SAM_TASK_TOOL_PATHS: expected absolute directories separated by ':', got '${bad}'`);
  }
  return paths;
}

const UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** `4g`, `512m`, `1073741824`, or `unlimited`. */
export function parseBytes(raw: string): number | null | undefined {
  if (raw === "unlimited") return null;
  const m = /^(\d+)\s*([kmgt]?)(?:i?b)?$/i.exec(raw.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

function envBytes(env: Env, name: string, fallback: number | null): number | null {
  const raw = envString(env, name);
  if (raw === undefined) return fallback;
  const n = parseBytes(raw);
  if (n === undefined || (n !== null && n < 64 * 1024 ** 2)) {
    throw new ConfigError(`${name}: expected a size of at least 64m like 512m or 4g, or 'unlimited', got '${raw}'`);
  }
  return n;
}

function envSeconds(env: Env, name: string, fallback: number | null): number | null {
  if (envString(env, name) === "unlimited") return null;
  const ms = envDuration(env, name, (fallback ?? 0) * 1000);
  return ms === 0 ? null : Math.max(1, Math.ceil(ms / 1000));
}

export function sandboxConfigFromEnv(env: Env): SandboxConfig {
  const d = SANDBOX_DEFAULTS;
  return {
    mode: envChoice(env, "SAM_TASK_SANDBOX", ["on", "off"] as const, d.mode),
    uid: envInt(env, "SAM_TASK_UID", d.uid, 1, 2 ** 31 - 2),
    gid: envInt(env, "SAM_TASK_GID", d.gid, 1, 2 ** 31 - 2),
    limits: {
      processes: envInt(env, "SAM_TASK_MAX_PROCESSES", d.limits.processes, 8, 1_000_000),
      openFiles: envInt(env, "SAM_TASK_MAX_OPEN_FILES", d.limits.openFiles, 64, 1_048_576),
      memoryBytes: envBytes(env, "SAM_TASK_MEMORY_LIMIT", d.limits.memoryBytes),
      cpuSeconds: envSeconds(env, "SAM_TASK_CPU_LIMIT", d.limits.cpuSeconds),
    },
    toolPaths: envToolPaths(env),
  };
}
