// `npm start` itself: the edge on embedded defaults answers /healthz within seconds and stops on SIGINT
// with no process left behind.
import { expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { processExists } from "../shared/process.ts";

const root = join(import.meta.dir, "..");


test("npm start serves /healthz and a SIGINT stops it with no orphans", async () => {
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
    child.on("exit", (code, signal) => resolve({ code, signal })));

  const started = Date.now();
  let url: string | undefined;
  while (!url && Date.now() - started < 30_000) {
    url = /listening on (http:\/\/[\d.]+:\d+)/.exec(out)?.[1];
    if (!url) await Bun.sleep(50);
  }
  expect(url).toBeDefined();
  expect(out).toMatch(/admin token: samadm_\w+/);
  const res = await fetch(`${url}/healthz`);
  expect(res.status).toBe(200);

  // Like Ctrl-C in a terminal: the signal reaches the whole foreground process group.
  const group = Bun.spawnSync(["ps", "-o", "pid=", "-g", String(child.pid)]).stdout.toString().trim().split(/\s+/).map(Number);
  process.kill(-child.pid!, "SIGINT");
  // npm itself dies of the SIGINT like any shell job does; what matters is that the edge shut down cleanly.
  const { code, signal } = await exited;
  expect(code === 0 || signal === "SIGINT").toBe(true);
  const deadline = Date.now() + 5_000;
  while (group.some(processExists) && Date.now() < deadline) await Bun.sleep(50);
  expect(group.filter(processExists)).toEqual([]);
  expect(out).toContain("SAM edge: SIGINT, shutting down");
  rmSync(dataDir, { recursive: true, force: true });
}, 60_000);
