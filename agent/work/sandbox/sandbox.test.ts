import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../../shared/env.ts";
import { bwrapArgv, type HostLayout, rlimitArgs, type SandboxCommand } from "./bwrap.ts";
import { SANDBOX_DEFAULTS, sandboxConfigFromEnv } from "./config.ts";
import { readHostLayout } from "./layout.ts";
import { chownTree } from "./ownership.ts";
import { isRoot, probeSandbox } from "./probe.ts";

const LAYOUT: HostLayout = {
  system: [
    { path: "/usr", kind: "dir" },
    { path: "/bin", kind: "symlink", target: "usr/bin" },
    { path: "/lib", kind: "symlink", target: "usr/lib" },
    { path: "/etc", kind: "dir" },
  ],
  masked: [{ path: "/etc/sam", kind: "dir" }, { path: "/etc/shadow", kind: "file" }],
  extraReadOnly: ["/run/systemd/resolve/stub-resolv.conf"],
};

const command = (over: Partial<SandboxCommand> = {}): SandboxCommand => ({
  bwrap: "/usr/bin/bwrap",
  prlimit: "/usr/bin/prlimit",
  setpriv: "/usr/bin/setpriv",
  uid: 65534,
  gid: 65534,
  workspace: "/var/lib/sam-agent/workspaces/t1",
  layout: LAYOUT,
  limits: SANDBOX_DEFAULTS.limits,
  argv: ["sh", "-c", "make test"],
  ...over,
});

/** The argv as `flag args…` groups, for assertions that do not depend on the order of unrelated flags. */
const pairs = (argv: string[]) => argv.map((a, i) => `${a} ${argv[i + 1] ?? ""}`);

describe("the bwrap command line", () => {
  test("namespaces, a PID namespace that dies with the agent, its own /proc, /dev and /tmp, the workspace at /workspace", () => {
    const argv = bwrapArgv(command());
    expect(argv.slice(0, 5)).toEqual([
      "/usr/bin/bwrap",
      "--unshare-pid",
      "--unshare-ipc",
      "--unshare-cgroup-try",
      "--die-with-parent",
    ]);
    expect(argv).not.toContain("--unshare-net"); // tasks need the edge's /v1 and git remotes
    expect(argv).not.toContain("--unshare-user"); // a uid mapping is no privilege drop for file access
    const p = pairs(argv);
    expect(p).toEqual(expect.arrayContaining(["--proc /proc", "--dev /dev", "--chdir /workspace", "--setenv HOME"]));
    expect(argv.join(" ")).toContain("--perms 1777 --tmpfs /tmp");
    expect(argv.join(" ")).toContain("--bind /var/lib/sam-agent/workspaces/t1 /workspace");
    // The workspace is the only writable bind; everything else of the host is read-only.
    expect(argv.filter((a) => a === "--bind")).toHaveLength(1);
  });

  test("system trees read-only, merged-/usr links as links, secrets masked after the tree they sit in", () => {
    const argv = bwrapArgv(command());
    const s = argv.join(" ");
    expect(s).toContain("--ro-bind /usr /usr");
    expect(s).toContain("--ro-bind /etc /etc");
    expect(s).toContain("--symlink usr/bin /bin");
    expect(s).toContain("--tmpfs /etc/sam");
    expect(s).toContain("--ro-bind /dev/null /etc/shadow");
    expect(s).toContain("--ro-bind /run/systemd/resolve/stub-resolv.conf /run/systemd/resolve/stub-resolv.conf");
    expect(argv.indexOf("/etc/sam")).toBeGreaterThan(argv.indexOf("/etc"));
  });

  test("an operator's tool dir is bound read-only, its parents made traversable (bwrap would make them 0700)", () => {
    const base = command();
    const argv = bwrapArgv({ ...base, layout: { ...base.layout, extraReadOnly: ["/opt/agents/bin"] } });
    const s = argv.join(" ");
    expect(s).toContain(
      "--perms 0755 --dir /opt --perms 0755 --dir /opt/agents --ro-bind /opt/agents/bin /opt/agents/bin",
    );
    expect(argv.filter((a) => a === "--bind")).toHaveLength(1);
    // A tool dir under /tmp is bound after the private /tmp, which would otherwise hide it.
    const tmp = bwrapArgv({ ...base, layout: { ...base.layout, extraReadOnly: ["/tmp/ci/node_modules"] } });
    expect(tmp.indexOf("/tmp/ci/node_modules")).toBeGreaterThan(tmp.indexOf("--tmpfs"));
    expect(tmp.join(" ")).toContain("--perms 0755 --dir /tmp/ci --ro-bind /tmp/ci/node_modules /tmp/ci/node_modules");
  });

  test("rlimits, then the switch to the task uid with no capabilities left, then the command", () => {
    const argv = bwrapArgv(command());
    const sep = argv.indexOf("--");
    expect(argv.slice(sep + 1, sep + 8)).toEqual([
      "/usr/bin/prlimit",
      "--nproc=512:512",
      "--nofile=4096:4096",
      `--as=${4 * 1024 ** 3}:${4 * 1024 ** 3}`,
      "--cpu=3600:3600",
      "--core=0:0",
      "--",
    ]);
    expect(argv.slice(sep + 8)).toEqual([
      "/usr/bin/setpriv",
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      "--inh-caps=-all",
      "--bounding-set=-all",
      "--no-new-privs",
      "--",
      "sh",
      "-c",
      "make test",
    ]);
  });

  test("an agent that is not root has no uid to switch to: no setpriv", () => {
    const argv = bwrapArgv(command({ setpriv: null }));
    expect(argv.some((a) => a.includes("setpriv"))).toBe(false);
    expect(argv.slice(-3)).toEqual(["sh", "-c", "make test"]);
  });

  test("unlimited memory and CPU", () => {
    expect(rlimitArgs({ processes: 64, openFiles: 256, memoryBytes: null, cpuSeconds: null })).toEqual([
      "--nproc=64:64",
      "--nofile=256:256",
      "--as=unlimited:unlimited",
      "--cpu=unlimited:unlimited",
      "--core=0:0",
    ]);
  });
});

describe("sandbox settings", () => {
  test("defaults, and each limit from its variable", () => {
    expect(sandboxConfigFromEnv({})).toEqual(SANDBOX_DEFAULTS);
    expect(sandboxConfigFromEnv({
      SAM_TASK_SANDBOX: "off",
      SAM_TASK_UID: "1001",
      SAM_TASK_GID: "1002",
      SAM_TASK_MAX_PROCESSES: "64",
      SAM_TASK_MAX_OPEN_FILES: "1024",
      SAM_TASK_MEMORY_LIMIT: "512m",
      SAM_TASK_CPU_LIMIT: "90s",
      SAM_TASK_TOOL_PATHS: "/opt/agents:/srv/tools/bin",
    })).toEqual({
      mode: "off",
      uid: 1001,
      gid: 1002,
      limits: { processes: 64, openFiles: 1024, memoryBytes: 512 * 1024 ** 2, cpuSeconds: 90 },
      toolPaths: ["/opt/agents", "/srv/tools/bin"],
    });
    expect(sandboxConfigFromEnv({ SAM_TASK_MEMORY_LIMIT: "unlimited", SAM_TASK_CPU_LIMIT: "unlimited" }).limits)
      .toMatchObject({ memoryBytes: null, cpuSeconds: null });
  });

  test.each([
    [{ SAM_TASK_SANDBOX: "maybe" }, "SAM_TASK_SANDBOX: expected one of on, off, got 'maybe'"],
    [{ SAM_TASK_UID: "0" }, "SAM_TASK_UID: expected an integer from 1 to 2147483646, got '0'"],
    [
      { SAM_TASK_MEMORY_LIMIT: "1m" },
      "SAM_TASK_MEMORY_LIMIT: expected a size of at least 64m like 512m or 4g, or 'unlimited', got '1m'",
    ],
    [
      { SAM_TASK_TOOL_PATHS: "/opt/ok:relative/bin" },
      "SAM_TASK_TOOL_PATHS: expected absolute directories separated by ':', got 'relative/bin'",
    ],
    [
      { SAM_TASK_TOOL_PATHS: "/opt/../etc" },
      "SAM_TASK_TOOL_PATHS: expected absolute directories separated by ':', got '/opt/../etc'",
    ],
    [
      { SAM_TASK_MEMORY_LIMIT: "lots" },
      "SAM_TASK_MEMORY_LIMIT: expected a size of at least 64m like 512m or 4g, or 'unlimited', got 'lots'",
    ],
  ])("a bad value is refused naming the variable: %j", (env, message) => {
    expect(() => sandboxConfigFromEnv(env)).toThrow(new ConfigError(message));
  });
});

describe("on this host", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "sam-sandbox-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("the probe names what is missing and its package; off is the operator's choice", () => {
    const bin = join(dir, "bin");
    mkdirSync(bin);
    expect(probeSandbox({ mode: "off" }, bin)).toEqual({ state: "off" });
    const none = probeSandbox({ mode: "on" }, bin, true);
    expect(none.state).toBe("unavailable");
    expect(none.state === "unavailable" && none.message).toContain(
      "lacks 'bwrap', 'prlimit', 'setpriv': install the Debian/Ubuntu packages 'bubblewrap', 'util-linux'",
    );
    const unprivileged = probeSandbox({ mode: "on" }, bin, false);
    expect(unprivileged.state === "unavailable" && unprivileged.message).toContain("lacks 'bwrap', 'prlimit': install"); // no uid to switch to, no setpriv
  });

  test("the host layout masks the agent's own secrets only where a bound tree would show them", () => {
    const layout = readHostLayout([join(dir, "tokens"), "/etc/hostname"]);
    expect(layout.system.map((e) => e.path)).toEqual(expect.arrayContaining(["/usr", "/etc"]));
    expect(layout.masked).toContainEqual({ path: "/etc/hostname", kind: "file" });
    expect(layout.masked.some((m) => m.path.startsWith(dir))).toBe(false); // not bound at all
  });

  test("chownTree hands over every entry without following a symlink out", async () => {
    const ws = join(dir, "ws");
    mkdirSync(join(ws, "sub"), { recursive: true });
    writeFileSync(join(ws, "sub", "f"), "x");
    const outside = join(dir, "outside");
    writeFileSync(outside, "x");
    symlinkSync(outside, join(ws, "link"));
    if (!isRoot()) return; // only root can give files away
    chownTree(ws, 65534, 65534);
    for (const p of [ws, join(ws, "sub"), join(ws, "sub", "f")]) expect(statSync(p).uid).toBe(65534);
    expect(statSync(outside).uid).toBe(0);
  });

  // The property the sandbox rests on where the agent is root: a root-only file the task can see is still
  // unreadable, because of the uid switch — and readable without it, so the test shows the switch matters.
  test.skipIf(!isRoot() || !Bun.which("bwrap"))(
    "a root-only file bound into the sandbox is unreadable after the uid switch, and only because of it",
    async () => {
      // Not under /tmp: the sandbox has a /tmp of its own, mounted over anything bound there.
      const outsideTmp = mkdtempSync("/var/tmp/sam-sandbox-");
      const secret = join(outsideTmp, "root-only");
      writeFileSync(secret, "root secret\n", { mode: 0o600 });
      chmodSync(secret, 0o600);
      const ws = join(dir, "ws2");
      mkdirSync(ws);
      const status = probeSandbox({ mode: "on" }, process.env.PATH);
      if (status.state !== "ready") throw new Error("bwrap is installed but the probe did not find it");
      const layout = { ...readHostLayout(), extraReadOnly: [secret] };
      const run = (setpriv: string | null) => {
        const argv = bwrapArgv({
          ...status.tools,
          setpriv,
          uid: 65534,
          gid: 65534,
          workspace: ws,
          layout,
          limits: SANDBOX_DEFAULTS.limits,
          argv: ["cat", secret],
        });
        const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
        return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
      };
      try {
        expect(run(status.tools.setpriv)).toMatchObject({
          code: 1,
          out: "",
          err: expect.stringContaining("Permission denied"),
        });
        expect(run(null)).toMatchObject({ code: 0, out: "root secret\n" });
      } finally {
        rmSync(outsideTmp, { recursive: true, force: true });
      }
    },
  );
});
