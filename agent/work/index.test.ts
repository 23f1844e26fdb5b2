/**
 * The task executor is loaded on the first dispatch, not at start (to keep an idle agent small, docs/agent.md § Memory). The agent is bundled
 * with a line added to `executor.ts` and `shared/wire/task.ts` that reports their evaluation, and run: an
 * idle agent must not evaluate them; a dispatch must, and the task must run.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type FakeEdge, startFakeEdge, until } from "../testing/fake-edge.ts";
import { loadTaskExecutor } from "./index.ts";
import { WORK_DEFAULTS } from "./config.ts";

const AGENT_TOKEN = "samagent_work_lazy_test_0123456789";
const MARKED = /agent\/work\/executor\.ts$|shared\/wire\/task\.ts$/;
let base: string;
let edge: FakeEdge;
let proc: ReturnType<typeof Bun.spawn> | null = null;

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), "sam-work-lazy-"));
  edge = startFakeEdge("samnode_work_lazy_test_0123456789");
});
afterAll(async () => {
  proc?.kill("SIGKILL");
  await proc?.exited;
  await edge.stop();
  rmSync(base, { recursive: true, force: true });
});

describe("the task executor is loaded on first use", () => {
  test(
    "an idle agent evaluates neither the executor nor the task schemas; the first dispatch loads both and the task runs",
    async () => {
      const out = await Bun.build({
        entrypoints: [join(import.meta.dir, "..", "main.ts")],
        target: "bun",
        format: "esm",
        outdir: join(base, "bundle"),
        plugins: [{
          name: "mark-evaluation",
          setup(build) {
            build.onLoad({ filter: MARKED }, async (args) => ({
              loader: "ts",
              contents: `console.error("EVALUATED ${args.path.split("/").slice(-2).join("/")}");\n${await Bun.file(
                args.path,
              ).text()}`,
            }));
          },
        }],
      });
      expect(out.success).toBe(true);

      writeFileSync(join(base, "tokens"), `SAM_NODE_TOKEN=${edge.token}\nSAM_AGENT_TOKEN=${AGENT_TOKEN}\n`, {
        mode: 0o600,
      });
      proc = Bun.spawn([process.execPath, out.outputs[0]!.path], {
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: process.env.HOME ?? "/tmp",
          SAM_NODE_ID: "node-lazy",
          SAM_CONTROL_PLANE_URL: edge.url,
          SAM_TOKEN_FILE: join(base, "tokens"),
          SAM_AGENT_HOST: "127.0.0.1",
          SAM_AGENT_PORT: "0",
          SAM_AGENT_DATA_DIR: join(base, "data"),
          SAM_BOOT_SOURCE: "none",
          SAM_WORKSPACE_MODE: "host",
          SAM_HEARTBEAT_INTERVAL: "200ms",
        },
        stdout: "ignore",
        stderr: "pipe",
      });
      let stderr = "";
      void (async () => {
        for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) stderr += new TextDecoder().decode(chunk);
      })();

      // Started, reported ready and heartbeating: the idle path has run.
      const ready = await until("the ready callback", () => edge.ready, 10_000);
      const auth = { authorization: `Bearer ${AGENT_TOKEN}` };
      await until("a heartbeat sent", async () => {
        const res = await fetch(`${ready.url}/events?type=heartbeat.sent`, { headers: auth });
        return ((await res.json()) as { data: unknown[] }).data.length > 0;
      }, 10_000);
      expect(stderr).not.toContain("EVALUATED");

      const res = await fetch(`${ready.url}/tasks`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({
          taskId: "lazy-1",
          prompt: "p",
          agent: { type: "command", command: "echo ran" },
          timeoutMs: 30_000,
          inference: { baseUrl: `${edge.url}/v1`, token: "samtask_lazy" },
        }),
      });
      expect(res.status).toBe(202);
      const result = await until("the task's result", () => edge.results.get("lazy-1"), 10_000);
      expect(result.status).toBe("succeeded");
      expect(edge.linesOf("lazy-1")).toContain("ran");
      expect(stderr).toContain("EVALUATED wire/task.ts");
      expect(stderr).toContain("EVALUATED work/executor.ts");
    },
    30_000,
  );

  test("before any dispatch the node knows no task and creates nothing in its data dir", async () => {
    const dataDir = join(base, "fresh");
    const noop = { record() {} };
    const executor = await loadTaskExecutor({
      config: { ...WORK_DEFAULTS, dataDir },
      events: noop,
      controlPlane: { post: () => Promise.reject(new Error("unused")) },
    });
    expect(executor.activeTaskIds()).toEqual([]);
    expect(executor.status("t1")).toBeNull();
    expect(await executor.cancel("t1")).toBe(false);
    await executor.shutdown();
    expect(existsSync(join(dataDir, "work.db"))).toBe(false);
  });
});
