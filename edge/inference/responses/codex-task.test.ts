// Codex as a SAM task, end to end: an edge on the local provider starts the real agent binary, which runs a
// `command` agent that invokes `codex exec` against the edge's own /v1 (the task's inference token as the
// key, the task's OPENAI_BASE_URL as the provider's base_url). The scripted model behind the edge asks Codex
// to write a file; the task's result diff must contain it.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TaskView } from "../../../shared/wire/api.ts";
import { AGENT_BINARY, ensureAgentBinary } from "../../../agent/testing/binary.ts";
import { initRepo } from "../../../agent/testing/git-repo.ts";
import { CODEX, writeFileScript } from "../../testing/codex.ts";
import { until } from "../../../shared/testing/until.ts";
import { startTestEdge, type TestEdge } from "../../testing/test-edge.ts";
import { type ScriptedChat, startScriptedChat } from "../../../shared/testing/scripted-chat.ts";

let base: string;
let repo: string;
let model: ScriptedChat;
let edge: TestEdge;

beforeAll(async () => {
  ensureAgentBinary();
  // Codex is installed in the repo's node_modules, outside /usr: the sandbox shows it read-only, as an
  // operator would with CLIs under /opt (SAM_TASK_TOOL_PATHS; the local provider passes it to its agents).
  process.env.SAM_TASK_TOOL_PATHS = join(import.meta.dir, "..", "..", "..", "node_modules");
  base = mkdtempSync(join(tmpdir(), "sam-codex-task-"));
  repo = initRepo(join(base, "repo"), { "README.md": "a repo\n" });
  model = await startScriptedChat(writeFileScript("CODEX.md", "written by codex"));
  edge = await startTestEdge({
    env: { SAM_AGENT_BINARY: AGENT_BINARY, SAM_HEARTBEAT_INTERVAL: "1s", SAM_INFERENCE_URL: model.url },
  });
}, 30_000);

afterAll(async () => {
  await edge?.stop();
  await model?.close();
  delete process.env.SAM_TASK_TOOL_PATHS;
  rmSync(base, { recursive: true, force: true });
}, 30_000);

/** What a user puts in a task's `agent.command` to run Codex against SAM: a config from the task's env. */
const CODEX_COMMAND = [
  'export CODEX_HOME="$(mktemp -d)"',
  'printf \'model = "%s"\\nmodel_provider = "sam"\\n[model_providers.sam]\\nname = "SAM"\\nbase_url = "%s"\\nenv_key = "OPENAI_API_KEY"\\nwire_api = "responses"\\n\' "$OPENAI_MODEL" "$OPENAI_BASE_URL" > "$CODEX_HOME/config.toml"',
  `${CODEX} exec --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox "$SAM_TASK_PROMPT" < /dev/null`,
].join(" && ");

test("a command task running codex exec against the edge's /v1: the result's patch has Codex's file", async () => {
  const { key } = await edge.createKey("codex-user");
  const res = await edge.call("POST", "/api/tasks", {
    token: key,
    body: { prompt: "Write CODEX.md", repo: { url: repo }, agent: { type: "command", command: CODEX_COMMAND } },
  });
  expect(res.status).toBe(201);
  const task = (await res.json()) as TaskView;
  const view = await until(`task ${task.id} to finish`, async () => {
    const v = (await (await edge.call("GET", `/api/tasks/${task.id}`, { token: key })).json()) as TaskView;
    return ["succeeded", "failed", "cancelled"].includes(v.status) ? v : undefined;
  }, 100_000);
  if (view.status !== "succeeded") {
    const log = (await (await edge.call("GET", `/api/tasks/${task.id}/events`, { token: key })).json()) as {
      data: { message?: string }[];
    };
    throw new Error(`task ${view.status}: ${view.error}\n${log.data.map((e) => e.message ?? "").join("\n")}`);
  }
  expect(view.result!.patch).toContain("+++ b/CODEX.md");
  expect(view.result!.patch).toContain("+written by codex");
  // Codex reached the model through the edge with the task's token: the shell result came back as a tool message.
  expect(model.requests.length).toBeGreaterThanOrEqual(2);
  expect(model.requests.at(-1)!.messages.some((m) => m.role === "tool")).toBe(true);
}, 120_000);
