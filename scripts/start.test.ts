// `npm start` itself: the edge on embedded defaults answers /healthz within seconds and stops on SIGINT
// with no process left behind.
import { expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { processExists } from "../shared/process.ts";

const root = join(import.meta.dir, "..");

const gitStatus = () => Bun.spawnSync(["git", "status", "--porcelain"], { cwd: root }).stdout.toString();

test("npm start serves /healthz and a SIGINT stops it with no orphans, leaving git status as it was", async () => {
  const statusBefore = gitStatus();
  const dataDir = mkdtempSync(join(tmpdir(), "sam-start-"));
  const child = spawn("npm", ["start", "--silent"], {
    cwd: root,
    env: { ...process.env, SAM_PORT: "0", SAM_DATA_DIR: dataDir },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal }))
  );

  const started = Date.now();
  let url: string | undefined;
  while (!url && Date.now() - started < 30_000) {
    // The URL and the admin token are printed by one callback, but may arrive in two reads.
    if (/admin token: /.test(out)) url = /listening on (http:\/\/[\d.]+:\d+)/.exec(out)?.[1];
    if (!url) await Bun.sleep(50);
  }
  expect(url).toBeDefined();
  expect(out).toMatch(/admin token: samadm_\w+/);
  const res = await fetch(`${url}/healthz`);
  expect(res.status).toBe(200);

  // Like Ctrl-C in a terminal: the signal reaches the whole foreground process group.
  const group = Bun.spawnSync(["ps", "-o", "pid=", "-g", String(child.pid)]).stdout.toString().trim().split(/\s+/).map(
    Number,
  );
  process.kill(-child.pid!, "SIGINT");
  // npm itself dies of the SIGINT like any shell job does; what matters is that the edge shut down cleanly.
  const { code, signal } = await exited;
  expect(code === 0 || signal === "SIGINT").toBe(true);
  const deadline = Date.now() + 5_000;
  while (group.some(processExists) && Date.now() < deadline) await Bun.sleep(50);
  expect(group.filter(processExists)).toEqual([]);
  expect(out).toContain("SAM edge: SIGINT, shutting down");
  expect(gitStatus()).toBe(statusBefore);
  rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

test("a port in use stops the edge with one line naming it, not a stack trace", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "sam-start-"));
  const taken = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
  try {
    const r = Bun.spawnSync([join(root, "node_modules", ".bin", "deno"), "run", "--allow-all", "edge/main.ts"], {
      cwd: root,
      env: { ...process.env, SAM_PORT: String(taken.port), SAM_DATA_DIR: dataDir },
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.toString()).toBe(
      `sam: cannot listen on 127.0.0.1:${taken.port}: the address is already in use (set SAM_PORT or SAM_HOST)\n`,
    );
  } finally {
    taken.stop(true);
    rmSync(dataDir, { recursive: true, force: true });
  }
}, 30_000);

test("render:cloud-init answers --help with its usage and a bad flag with one line", () => {
  const render = (...args: string[]) =>
    Bun.spawnSync([process.execPath, "scripts/render-cloud-init.ts", ...args], {
      cwd: root,
      stdout: "pipe",
      stderr: "pipe",
    });
  const help = render("--help");
  expect(help.exitCode).toBe(0);
  expect(help.stdout.toString()).toContain("usage: npm run render:cloud-init");
  const bad = render("--nodeid", "n1");
  expect(bad.exitCode).toBe(2);
  expect(bad.stderr.toString()).toBe("render:cloud-init: Unknown option '--nodeid'; see --help\n");
});

test("a missing Debian package stops the set-up with one line naming the command to run", () => {
  const script =
    `import("./scripts/system-packages.mjs").then((m) => m.ensureSystemPackages([["sam-no-such-command", "sam-no-such-package"], ["sh", "dash"]], { install: false }))`;
  const r = Bun.spawnSync(["node", "-e", script], { cwd: root, stdout: "pipe", stderr: "pipe" });
  expect(r.exitCode).toBe(1);
  expect(r.stderr.toString()).toBe(
    "setup: the tests need Debian packages that are missing; run: sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends sam-no-such-package'\n",
  );
});
