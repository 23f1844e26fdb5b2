// Codex CLI (`@openai/codex`, pinned) headless against SAM's /v1/responses, with a custom model provider
// (`wire_api = "responses"`) and a scripted model that asks it to write a file with its shell tool.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CODEX, codexConfig, writeFileScript } from "../../testing/codex.ts";
import { type ScriptedChat, startScriptedChat } from "../../../shared/testing/scripted-chat.ts";
import { type Served, serveInference, TOKENS } from "../../testing/inference-harness.ts";

let upstream: ScriptedChat;
let sam: Served;
let dir: string;
beforeAll(async () => {
  upstream = await startScriptedChat(writeFileScript("hello.txt", "hello from codex"));
  sam = await serveInference({ SAM_INFERENCE_URL: upstream.url });
  // Not under /tmp: Codex refuses to put its helper binaries in a temporary directory's CODEX_HOME.
  dir = mkdtempSync(join(import.meta.dir, "../../../.codex-test-"));
});
afterAll(async () => {
  await sam.close();
  await upstream.close();
  rmSync(dir, { recursive: true, force: true });
});

test("codex exec writes the file the model asks for, through SAM's Responses API", async () => {
  const home = join(dir, "home");
  const work = join(dir, "work");
  for (const d of [home, work]) Bun.spawnSync(["mkdir", "-p", d]);
  writeFileSync(join(home, "config.toml"), codexConfig(sam.baseURL, "scripted-model"));
  const proc = Bun.spawn([
    CODEX,
    "exec",
    "--skip-git-repo-check",
    "--dangerously-bypass-approvals-and-sandbox",
    "-C",
    work,
    "Write hello.txt",
  ], {
    env: { PATH: process.env.PATH!, HOME: dir, CODEX_HOME: home, SAM_API_KEY: TOKENS.alice, NO_COLOR: "1" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const killer = setTimeout(() => proc.kill(), 90_000);
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(killer);
  const file = join(work, "hello.txt");
  if (!existsSync(file)) throw new Error(`codex did not write the file (exit ${code}):\n${out}\n${err}`);
  expect(readFileSync(file, "utf8")).toBe("hello from codex");
  expect(code).toBe(0);
  // Codex sent its own request shape: developer messages, its tools, and the shell result back as a tool message.
  const first = upstream.requests[0]!;
  expect(first.stream).toBe(true);
  const names = first.tools!.map((t) => t.function.name);
  expect(names).toContain("exec_command");
  // Its namespace tool arrived flattened; its built-in web_search tool was not forwarded.
  expect(names).toContain("multi_agent_v1__spawn_agent");
  expect(names).not.toContain("web_search");
  const tool = upstream.requests.at(-1)!.messages.find((m) => m.role === "tool");
  expect(tool).toBeDefined();
}, 120_000);
