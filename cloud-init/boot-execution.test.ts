// The rendered boot, executed: cloud-init's own runcmd script runs under `sh` in a temp root with fake
// docker/curl/systemctl/iptables/logger on PATH and a real `tar`, `sha256sum`, `openssl`, `install`. It proves
// the order, that the image pull overlaps the Node.js install, that a tampered agent binary is refused, that a
// failed phase still lets the agent start, and that the markers read back as boot phases.
import { buildBootTimeline, parseJournalJson } from "../agent/boot/index.ts";
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BACKGROUND_PHASES, NODE_VERSION, nodeTarball, PHASE_ORDER } from "./boot-plan.ts";
import type { CloudInitInput } from "./inputs.ts";
import {
  type Call,
  materialiseWriteFiles,
  readCalls,
  runcmdScript,
  underRoot,
  writeFakes,
} from "./testing/rehearsal.ts";
import { renderCloudInit } from "./render.ts";
import { SAMPLE_INPUT } from "./sample-inputs.ts";
import { VM } from "./vm-layout.ts";

const arch = process.arch === "arm64" ? "arm64" : "amd64";
const work = mkdtempSync(join(tmpdir(), "sam-boot-exec-"));
afterAll(() => {
  if (!process.env.SAM_KEEP) rmSync(work, { recursive: true, force: true });
});

const AGENT_BYTES = "#!/bin/sh\necho sam-agent\n";
const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

/** The downloads the fake curl serves: a Node.js tarball (with a recording `npm`) and its SHASUMS256.txt. */
function buildDownloads(dir: string, agentBytes: string, nodeSumWrong = false): void {
  mkdirSync(dir, { recursive: true });
  const tarball = nodeTarball(arch);
  const top = join(dir, "src", `node-v${NODE_VERSION}`);
  mkdirSync(join(top, "bin"), { recursive: true });
  writeFileSync(join(top, "bin", "node"), "#!/bin/sh\necho v" + NODE_VERSION + "\n");
  // npm as the tarball ships it: here it records its call and "installs" the devcontainer CLI.
  writeFileSync(
    join(top, "bin", "npm"),
    `#!/bin/sh
printf '%s %s npm %s\\n' "$(date +%s%6N)" "$(date +%s%6N)" "$*" >>"$SAM_FAKE_CALLS"
test -e "$SAM_FAKE_ROOT/run/sam/devcontainer-cli.pending" && printf 'pending while npm ran\\n' >"$SAM_FAKE_ROOT/npm-saw-marker"
sleep "\${SAM_FAKE_NPM_SECONDS:-0}"
test "\${SAM_FAKE_NPM_EXIT:-0}" = 0 || exit "$SAM_FAKE_NPM_EXIT"
prefix=; while [ $# -gt 0 ]; do case "$1" in --prefix) prefix=$2; shift 2;; *) shift;; esac; done
case "$prefix" in "$SAM_FAKE_ROOT"/*) ;; *) echo "npm: prefix $prefix is outside the rehearsal root" >&2; exit 3;; esac
mkdir -p "$prefix/bin" && printf '#!/bin/sh\\n' >"$prefix/bin/devcontainer" && chmod 0755 "$prefix/bin/devcontainer"
`,
  );
  writeFileSync(join(top, "bin", "npx"), "#!/bin/sh\n");
  for (const f of ["node", "npm", "npx"]) chmodSync(join(top, "bin", f), 0o755);
  const tar = Bun.spawnSync(["tar", "-czf", join(dir, tarball.file), "-C", join(dir, "src"), `node-v${NODE_VERSION}`]);
  if (tar.exitCode !== 0) throw new Error(tar.stderr.toString());
  writeFileSync(
    join(dir, "SHASUMS256.txt"),
    `${"0".repeat(64)}  node-v${NODE_VERSION}-darwin-arm64.tar.gz\n${
      nodeSumWrong ? "1".repeat(64) : sha256(readFileSync(join(dir, tarball.file)))
    }  ${tarball.file}\n`,
  );
  writeFileSync(join(dir, "sam-agent-linux"), agentBytes);
}

type Phase = { name: string; status: "ok" | "failed" | "unterminated"; startUs: number; endUs: number | null };

/** The markers as the agent reads them on a real node: its own journald parser and phase pairing. */
function readBootPhases(journal: string): Phase[] {
  const markers = parseJournalJson(journal);
  const timeline = buildBootTimeline({
    source: "journald",
    markers,
    kernelUptimeMsAtAgentStart: null,
    agentStartedAt: Date.now(),
  });
  expect(markers.length).toBeGreaterThan(0);
  return timeline.phases.map((p) => ({
    name: p.name,
    status: p.status,
    startUs: p.startedAt * 1000,
    endUs: p.endedAt === null ? null : p.endedAt * 1000,
  }));
}

type Boot = { root: string; exitCode: number; phases: Phase[]; calls: Call[]; stderr: string };

/** Render, materialise and run one boot; `tamper` serves an agent binary that does not match its checksum. */
function rehearse(
  name: string,
  opts: {
    tamper?: boolean;
    pullExit?: number;
    dockerSince?: string;
    npmSeconds?: number;
    npmExit?: number;
    nodeSumWrong?: boolean;
    aptExit?: number;
  } = {},
): Boot {
  const dir = join(work, name);
  const root = join(dir, "root");
  const fakes = join(dir, "fakes");
  const downloads = join(dir, "downloads");
  mkdirSync(root, { recursive: true });
  writeFakes(fakes);
  buildDownloads(downloads, opts.tamper ? AGENT_BYTES + "# injected\n" : AGENT_BYTES, opts.nodeSumWrong);
  const input: CloudInitInput = {
    ...SAMPLE_INPUT,
    arch,
    agentDownloadUrl: "https://downloads.example.com/sam/sam-agent-linux",
    agentSha256: sha256(AGENT_BYTES),
  };
  const userData = renderCloudInit(input);
  materialiseWriteFiles(userData, root);
  const script = join(dir, "runcmd");
  const rooted = underRoot(runcmdScript(userData), root);
  // Refuse to run anything that would still write to this machine's own system paths.
  const stray = /(?<![\w.-])\/(?:usr\/local|etc|var|run)\b/.exec(rooted.split(root).join("ROOT"));
  if (stray) throw new Error(`rehearsal: the script still references ${stray[0]} outside the temp root`);
  writeFileSync(script, rooted);
  const env = {
    PATH: `${root}/usr/local/bin:${fakes}:/usr/bin:/bin`,
    SAM_FAKE_CALLS: join(dir, "calls.log"),
    SAM_FAKE_JOURNAL: join(dir, "journal.json"),
    SAM_FAKE_DOWNLOADS: downloads,
    SAM_FAKE_PULL_EXIT: String(opts.pullExit ?? 0),
    SAM_FAKE_ROOT: root,
    SAM_FAKE_DOCKER_SINCE: opts.dockerSince ?? "",
    SAM_FAKE_NPM_SECONDS: String(opts.npmSeconds ?? 0),
    SAM_FAKE_NPM_EXIT: String(opts.npmExit ?? 0),
    SAM_FAKE_APT_EXIT: String(opts.aptExit ?? 0),
  };
  const proc = Bun.spawnSync(["sh", script], { cwd: dir, env, timeout: 60_000 });
  const journal = existsSync(env.SAM_FAKE_JOURNAL) ? readFileSync(env.SAM_FAKE_JOURNAL, "utf8") : "";
  return {
    root,
    exitCode: proc.exitCode ?? -1,
    phases: readBootPhases(journal),
    calls: readCalls(env.SAM_FAKE_CALLS),
    stderr: proc.stderr.toString(),
  };
}

const statusOf = (boot: Boot) => Object.fromEntries(boot.phases.map((p) => [p.name, p.status]));
const systemctlCalls = (boot: Boot) => boot.calls.filter((c) => c.tool === "systemctl").map((c) => c.args.join(" "));

describe("a rehearsed boot", () => {
  let ok: Boot;
  test("runs every phase in the designed order, the agent last", () => {
    ok = rehearse("ok");
    expect(ok.exitCode).toBe(0);
    // Foreground phases run one after another in the plan's order; the background jobs start (in any
    // order, they race) after the firewall is up.
    const background = new Set(BACKGROUND_PHASES);
    expect(ok.phases.map((p) => p.name).sort()).toEqual([...PHASE_ORDER].sort());
    expect(ok.phases.filter((p) => !background.has(p.name)).map((p) => p.name)).toEqual(
      PHASE_ORDER.filter((n) => !background.has(n)),
    );
    const byName = Object.fromEntries(ok.phases.map((p) => [p.name, p]));
    for (const name of background) expect(byName[name]!.startUs).toBeGreaterThanOrEqual(byName["firewall"]!.endUs!);
    for (let i = 1; i < ok.phases.length; i++) {
      const [prev, cur] = [ok.phases[i - 1]!, ok.phases[i]!];
      if (!background.has(prev.name) && !background.has(cur.name)) {
        expect(cur.startUs).toBeGreaterThanOrEqual(prev.endUs!);
      }
    }
    expect(ok.phases.every((p) => p.status === "ok")).toBe(true);
    const sc = systemctlCalls(ok);
    expect(sc[0]).toBe("start docker.service");
    expect(sc.at(-1)).toBe("enable --now --no-block sam-agent.service");
    const restart = sc.indexOf("restart docker.service");
    expect(restart).toBeGreaterThan(0);
    expect(restart).toBeLessThan(sc.indexOf("enable --now --no-block sam-agent.service"));
    // The restart comes after the pull finished, so it never aborts it.
    const pull = ok.calls.find((c) => c.tool === "docker" && c.args[0] === "pull")!;
    const restartCall = ok.calls.find((c) => c.tool === "systemctl" && c.args.join(" ") === "restart docker.service")!;
    expect(restartCall.startUs).toBeGreaterThanOrEqual(pull.endUs);
    // Installed downloads do not stay on the disk.
    expect(existsSync(join(ok.root, VM.agentDownload))).toBe(false);
    expect(existsSync(join(ok.root, "usr/local/lib/sam/node.tar.gz"))).toBe(false);
    // Every marker is also reported live to the edge, with the node token from a 0600 header file.
    const progress = ok.calls.filter((c) => c.tool === "curl" && c.args[0]!.endsWith("/api/agent/boot-progress"))
      .map((c) => JSON.parse(c.args.slice(1).join(" ")) as { nodeId: string; kind: string; phase: string; at: number });
    // (The last report may still be on its way when the script ends: it never waits for one.)
    for (const name of PHASE_ORDER.filter((n) => n !== "image-pull-wait" && n !== "devcontainer-cli-wait")) {
      for (const kind of ["START", "END"]) {
        expect(progress.some((p) => p.phase === name && p.kind === kind && p.nodeId === SAMPLE_INPUT.nodeId)).toBe(
          true,
        );
      }
    }
    expect(readFileSync(join(ok.root, VM.progressHeaders), "utf8")).toBe(
      `Authorization: Bearer ${SAMPLE_INPUT.nodeToken}\n`,
    );
    expect(statSync(join(ok.root, VM.progressHeaders)).mode & 0o777).toBe(0o600);
    // No apt lock waits on the critical path: apt installs only the task sandbox, in a background phase;
    // and the only image pulled is the configured one.
    expect(ok.calls.filter((c) => c.tool === "apt-get").map((c) => c.args.join(" "))).toEqual([
      "-q -y -o DPkg::Lock::Timeout=120 install --no-install-recommends bubblewrap",
    ]);
    expect(ok.calls.filter((c) => c.tool === "docker").map((c) => c.args.join(" "))).toEqual([
      `pull ${SAMPLE_INPUT.baseImage}`,
    ]);
  }, 90_000);

  test("installs the agent binary and leaves none of it in the page cache (it is read from disk on start)", () => {
    // A just-written file sits in large folios a process maps whole: ≈ 5 MiB more idle RSS (docs/agent.md).
    // First of the checks on this boot: the ones below read the installed file, which caches it again.
    // util-linux's fincore counts a file's cached pages; checked on this rehearsal's installed file.
    const cached = Bun.spawnSync([
      "fincore",
      "--bytes",
      "--noheadings",
      "--output",
      "RES",
      join(ok.root, VM.agentBinary),
    ]);
    expect(cached.exitCode).toBe(0);
    expect(Number(cached.stdout.toString().trim())).toBe(0);
    // And what fincore reports for a file just written the same way, unflushed: it would catch a missing drop.
    const control = join(ok.root, "control-copy");
    Bun.spawnSync(["install", "-m", "0755", join(ok.root, VM.agentBinary), control]);
    expect(
      Number(
        Bun.spawnSync(["fincore", "--bytes", "--noheadings", "--output", "RES", control]).stdout.toString().trim(),
      ),
    ).toBeGreaterThan(0);
  });

  test("pulls the base image while Node.js installs", () => {
    const by = Object.fromEntries(ok.phases.map((p) => [p.name, p]));
    const node = by["nodejs-install"]!;
    const pull = by["image-pull"]!;
    expect(pull.startUs).toBeLessThan(node.endUs!);
    expect(node.startUs).toBeLessThan(pull.endUs!);
  });

  test("installs what the agent needs before it starts (TLS, verified binary), and node and the devcontainer CLI", () => {
    const { root } = ok;
    expect(existsSync(join(root, "usr/local/bin/devcontainer"))).toBe(true);
    // The install is over: no agent waits for it any more.
    expect(existsSync(join(root, VM.devcontainerCliPending))).toBe(false);
    expect(readFileSync(join(root, VM.agentBinary), "utf8")).toBe(AGENT_BYTES);
    expect(statSync(join(root, VM.agentBinary)).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(root, VM.tlsCert), "utf8")).toContain("BEGIN CERTIFICATE");
    expect(statSync(join(root, VM.tlsKey)).mode & 0o777).toBe(0o600);
    // The certificate names the address the agent reports (the default route's source), and is no CA: the
    // edge pins exactly it (edge/nodes/pinned-fetch.ts).
    const ext = Bun.spawnSync([
      "openssl",
      "x509",
      "-in",
      join(root, VM.tlsCert),
      "-noout",
      "-ext",
      "subjectAltName,basicConstraints",
    ]);
    expect(ext.stdout.toString()).toContain(`DNS:sam-node-${SAMPLE_INPUT.nodeId}, IP Address:203.0.113.7`);
    expect(ext.stdout.toString()).toContain("CA:FALSE");
    expect(readFileSync(join(root, VM.agentEnv), "utf8")).toEndWith("SAM_AGENT_PUBLIC_URL=https://203.0.113.7:8443\n");
    expect(statSync(join(root, VM.tokenFile)).mode & 0o777).toBe(0o600);
    // The firewall opens SSH and the agent port in both families, then drops the rest.
    const fw = ok.calls.filter((c) => c.tool === "iptables" || c.tool === "ip6tables").map((c) =>
      `${c.tool} ${c.args.join(" ")}`
    );
    for (const tool of ["iptables", "ip6tables"]) {
      expect(fw).toContain(`${tool} -A INPUT -p tcp --dport 22 -j ACCEPT`);
      expect(fw).toContain(`${tool} -A INPUT -p tcp --dport 8443 -j ACCEPT`);
      expect(fw.at(fw.lastIndexOf(`${tool} -P INPUT DROP`))).toBeDefined();
    }
  });

  test("refuses a tampered agent binary: never installed, never started", () => {
    const boot = rehearse("tampered", { tamper: true });
    const status = statusOf(boot);
    expect(status["agent-download"]).toBe("ok");
    expect(status["agent-verify"]).toBe("failed");
    expect(status["agent-start"]).toBe("failed");
    expect(existsSync(join(boot.root, VM.agentBinary))).toBe(false);
    expect(existsSync(join(boot.root, VM.agentDownload))).toBe(false);
    expect(systemctlCalls(boot).some((c) => c.includes("sam-agent"))).toBe(false);
    // Everything else still completed.
    expect(status["docker-restart"]).toBe("ok");
  }, 90_000);

  test("a daemon started after daemon.json was written is not restarted: the pull overlaps the agent's start", () => {
    const boot = rehearse("docker-current", { dockerSince: new Date(Date.now() + 3_600_000).toUTCString() });
    const status = statusOf(boot);
    expect(systemctlCalls(boot)).not.toContain("restart docker.service");
    expect(status["docker-restart"]).toBe("ok");
    expect(status["image-pull-wait"]).toBe("ok");
    const by = Object.fromEntries(boot.phases.map((p) => [p.name, p]));
    expect(by["agent-start"]!.endUs!).toBeLessThanOrEqual(by["image-pull-wait"]!.startUs);
  }, 90_000);

  test("the agent starts while the devcontainer CLI still installs; the marker says so until the install ends", () => {
    const boot = rehearse("slow-cli", { npmSeconds: 3 });
    const by = Object.fromEntries(boot.phases.map((p) => [p.name, p]));
    expect(statusOf(boot)["devcontainer-cli"]).toBe("ok");
    expect(statusOf(boot)["devcontainer-cli-wait"]).toBe("ok");
    // npm saw the marker: it exists from before the install until after it.
    expect(existsSync(join(boot.root, "npm-saw-marker"))).toBe(true);
    expect(existsSync(join(boot.root, VM.devcontainerCliPending))).toBe(false);
    expect(by["agent-start"]!.endUs!).toBeLessThan(by["devcontainer-cli"]!.endUs!);
    // The CLI install still waited for Node.js: a background job waits for its sibling.
    expect(by["devcontainer-cli"]!.endUs!).toBeGreaterThan(by["nodejs-install"]!.endUs!);
    const npm = boot.calls.find((c) => c.tool === "npm")!;
    expect(npm.startUs).toBeGreaterThanOrEqual(by["nodejs-install"]!.endUs!);
  }, 90_000);

  test("a failed CLI install removes the marker (no task waits for it) and is FAILED in the timeline", () => {
    const boot = rehearse("cli-fails", { npmExit: 7 });
    const status = statusOf(boot);
    expect(status["devcontainer-cli"]).toBe("failed");
    expect(status["devcontainer-cli-wait"]).toBe("failed");
    expect(status["agent-start"]).toBe("ok");
    expect(existsSync(join(boot.root, VM.devcontainerCliPending))).toBe(false);
  }, 90_000);

  test("a failed Node.js install fails the CLI install that waits for it, without running npm", () => {
    const boot = rehearse("node-fails", { nodeSumWrong: true });
    const status = statusOf(boot);
    expect(status["nodejs-install"]).toBe("failed");
    expect(status["devcontainer-cli"]).toBe("failed");
    expect(boot.calls.some((c) => c.tool === "npm")).toBe(false);
    expect(existsSync(join(boot.root, VM.devcontainerCliPending))).toBe(false);
    expect(status["agent-start"]).toBe("ok");
  }, 90_000);

  test("no bubblewrap to be had (no mirror): the sandbox phase fails, the agent still starts and reports", () => {
    const boot = rehearse("no-bubblewrap", { aptExit: 100 });
    const status = statusOf(boot);
    expect(status["sandbox-install"]).toBe("failed");
    expect(status["agent-download"]).toBe("ok");
    expect(status["agent-verify"]).toBe("ok");
    expect(status["agent-start"]).toBe("ok");
    // Both tries: the install from the image's lists, then after refreshing them.
    expect(boot.calls.filter((c) => c.tool === "apt-get").map((c) => c.args[0] === "-q" ? c.args[1] : c.args[0]))
      .toEqual(["-y", "update"]);
    expect(systemctlCalls(boot).at(-1)).toBe("enable --now --no-block sam-agent.service");
  }, 90_000);

  test("a failed phase is logged as FAILED and the agent still starts to report it", () => {
    const boot = rehearse("pull-fails", { pullExit: 1 });
    const status = statusOf(boot);
    expect(status["image-pull"]).toBe("failed");
    expect(status["image-pull-wait"]).toBe("failed");
    expect(status["agent-start"]).toBe("ok");
    expect(systemctlCalls(boot).at(-1)).toBe("enable --now --no-block sam-agent.service");
  }, 90_000);
});
