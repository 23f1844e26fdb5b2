import { expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../shared/env.ts";
import { WORK_DEFAULTS, workCapabilities, workConfigFromEnv } from "./index.ts";

test("work settings come from the agent's environment, with defaults", () => {
  expect(workConfigFromEnv({}, "/d")).toEqual({ ...WORK_DEFAULTS, dataDir: "/d" });
  expect(
    workConfigFromEnv({
      SAM_WORKSPACE_MODE: "host",
      SAM_MAX_CONCURRENT_TASKS: "4",
      SAM_KEEP_FAILED_WORKSPACES: "on",
      SAM_AGENT_COMMAND_TIMEOUT: "30s",
    }, "/d"),
  )
    .toMatchObject({ workspaceMode: "host", maxConcurrentTasks: 4, keepOnFailure: true, commandTimeoutMs: 30_000 });
});

test.each([
  [{ SAM_WORKSPACE_MODE: "docker" }, "SAM_WORKSPACE_MODE: expected one of auto, host, devcontainer, got 'docker'"],
  [{ SAM_MAX_CONCURRENT_TASKS: "0" }, "SAM_MAX_CONCURRENT_TASKS: expected an integer from 1 to 64, got '0'"],
  [
    { SAM_PATCH_MAX_BYTES: "99999999" },
    "SAM_PATCH_MAX_BYTES: expected an integer from 1024 to 1048576, got '99999999'",
  ],
])("a bad value is refused naming the variable: %j", (env, message) => {
  expect(() => workConfigFromEnv(env, "/d")).toThrow(new ConfigError(message));
});

test("capabilities offer devcontainer only when docker and devcontainer are both on PATH", () => {
  const bin = mkdtempSync(join(tmpdir(), "sam-caps-"));
  try {
    const config = workConfigFromEnv({}, "/d");
    expect(workCapabilities(config, { PATH: bin })).toEqual({
      workspaceModes: ["host"],
      agents: ["builtin", "command"],
      maxConcurrentTasks: 2,
      sandbox: "unavailable",
    });
    expect(workCapabilities(config, { PATH: bin, SAM_TASK_SANDBOX: "off" }).sandbox).toBe("off");
    for (const name of ["docker", "devcontainer"]) {
      writeFileSync(join(bin, name), "#!/bin/sh\n");
      chmodSync(join(bin, name), 0o755);
    }
    expect(workCapabilities(config, { PATH: bin }).workspaceModes).toEqual(["devcontainer", "host"]);
    expect(workCapabilities({ ...config, workspaceMode: "host" }, { PATH: bin }).workspaceModes).toEqual(["host"]);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});
