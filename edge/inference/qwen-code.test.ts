// qwen-code, a coding-agent CLI from npm, headless (`-p … --yolo`) against SAM's /v1 over HTTP with a
// scripted model that asks it to write a file with its own write_file tool (as Hermes text, which SAM turns
// into a streamed tool call): the file must appear. HOME is a temp dir; only loopback is used.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Served, serveInference, TOKENS } from "../testing/inference-harness.ts";
import { scriptedModel } from "../testing/scripted-model.ts";

const QWEN = join(import.meta.dir, "../../node_modules/@qwen-code/qwen-code/cli.js");

let upstream: ReturnType<typeof Bun.serve>;
let sam: Served;
let dir: string;

beforeAll(async () => {
  upstream = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: scriptedModel });
  sam = await serveInference({ SAM_INFERENCE_URL: `http://127.0.0.1:${upstream.port}/v1` });
  dir = mkdtempSync(join(tmpdir(), "sam-qwen-"));
});

afterAll(async () => {
  await sam.close();
  await upstream.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

test("qwen -p … --yolo writes the file the model asks for through SAM", async () => {
  const home = join(dir, "home");
  const work = join(dir, "work");
  mkdirSync(join(home, ".qwen"), { recursive: true });
  mkdirSync(work);
  // No update checks or usage statistics: the CLI must not reach beyond loopback.
  writeFileSync(
    join(home, ".qwen", "settings.json"),
    JSON.stringify({
      general: { disableAutoUpdate: true, disableUpdateNag: true },
      privacy: { usageStatisticsEnabled: false },
      telemetry: { enabled: false },
    }),
  );
  const target = join(work, "hello.txt");
  const node = Bun.which("node");
  expect(node).not.toBeNull();
  // cli.js directly with --expose-gc (what its launcher would add) and no relaunch: one Node start, not three.
  const child = Bun.spawn([
    node!,
    "--expose-gc",
    QWEN,
    "-p",
    `write "SAM wrote this" to ${target}`,
    "--yolo",
    "--auth-type",
    "openai",
    "--openai-api-key",
    TOKENS.alice,
    "--openai-base-url",
    sam.baseURL,
    "-m",
    "writer-hermes",
  ], {
    cwd: work,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: home,
      QWEN_CODE_NO_RELAUNCH: "true",
      QWEN_CODE_SUPPRESS_YOLO_WARNING: "1",
    },
    stdout: "pipe",
    stderr: "pipe",
  });
  const code = await child.exited;
  const out = await new Response(child.stdout).text();
  const err = await new Response(child.stderr).text();
  expect({ code, err: code === 0 ? "" : err }).toEqual({ code: 0, err: "" });
  expect(existsSync(target)).toBe(true);
  expect(readFileSync(target, "utf8")).toBe("SAM wrote this");
  expect(out).toContain("Successfully");
}, 120_000);
