// The rendered output checked by the tools that will consume it: `cloud-init schema`, `shellcheck` on the
// runcmd script exactly as cloud-init assembles it, and `systemd-analyze verify` on the agent unit. A missing
// tool fails the test (CI installs them with apt; see .ci/run) rather than skipping it.
import { afterAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { agentUnit } from "./agent-unit.ts";
import { runcmdScript } from "./testing/rehearsal.ts";
import { renderCloudInit } from "./render.ts";
import { ARM_INPUT, LARGEST_INPUT, SAMPLE_INPUT } from "./sample-inputs.ts";

const work = mkdtempSync(join(tmpdir(), "sam-cloud-init-tools-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const INPUT_SETS = { sample: SAMPLE_INPUT, arm: ARM_INPUT, largest: LARGEST_INPUT };

function run(cmd: string[]): { code: number; out: string } {
  const which = Bun.which(cmd[0]!);
  if (!which) throw new Error(`${cmd[0]} is not installed: apt-get install -y cloud-init shellcheck systemd`);
  const proc = Bun.spawnSync(cmd, { timeout: 15_000 });
  return { code: proc.exitCode ?? -1, out: proc.stdout.toString() + proc.stderr.toString() };
}

for (const [name, input] of Object.entries(INPUT_SETS)) {
  test(`cloud-init schema accepts the ${name} user-data`, () => {
    const path = join(work, `${name}.yaml`);
    writeFileSync(path, renderCloudInit(input));
    const { code, out } = run(["cloud-init", "schema", "--config-file", path]);
    expect(out).toContain("Valid cloud-config");
    expect(code).toBe(0);
  }, 20_000);

  test(`shellcheck passes the ${name} runcmd script`, () => {
    const path = join(work, `${name}.sh`);
    writeFileSync(path, runcmdScript(renderCloudInit(input)));
    const { code, out } = run(["shellcheck", "--shell=sh", "--severity=style", path]);
    expect(out).toBe("");
    expect(code).toBe(0);
  }, 20_000);
}

test("cloud-init schema rejects a broken document (the check can fail)", () => {
  const path = join(work, "broken.yaml");
  const config = parse(renderCloudInit(SAMPLE_INPUT));
  writeFileSync(
    path,
    `#cloud-config\n${JSON.stringify({ ...config, runcmd: "not a list", write_files: [{ content: 1 }] })}\n`,
  );
  const { code } = run(["cloud-init", "schema", "--config-file", path]);
  expect(code).not.toBe(0);
}, 20_000);

test("systemd-analyze verify accepts the agent unit", () => {
  // verify needs ExecStart to exist, so the unit points at a stand-in executable in the temp dir.
  const exe = join(work, "sam-agent");
  writeFileSync(exe, "#!/bin/sh\n");
  chmodSync(exe, 0o755);
  const unit = join(work, "sam-agent.service");
  writeFileSync(unit, agentUnit(exe));
  const { code, out } = run(["systemd-analyze", "verify", unit]);
  expect(out).toBe("");
  expect(code).toBe(0);
}, 20_000);
