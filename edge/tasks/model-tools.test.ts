// The built-in agent drives its model through tool calls: its default model can make them, and a task that
// names a model known not to is refused at submission, not failed on a node minutes later.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { SETTINGS } from "../../agent/config/index.ts";
import { WORK_DEFAULTS } from "../../agent/work/config.ts";
import { catalogueModel } from "../inference/models.ts";
import { ProviderDouble } from "../testing/provider-double.ts";
import { startTestEdge, type TestEdge } from "../testing/test-edge.ts";

let t: TestEdge;
let key: string;

beforeAll(async () => {
  t = await startTestEdge({ provider: new ProviderDouble() });
  key = (await t.createKey()).key;
});
afterAll(async () => {
  await t.stop();
});

test("the built-in agent's default model is in the catalogue and can call tools", () => {
  const documented = SETTINGS.find((s) => s.name === "SAM_AGENT_MODEL")!.default;
  expect(documented).toBe(WORK_DEFAULTS.defaultModel);
  expect(catalogueModel(WORK_DEFAULTS.defaultModel)?.tools).toBe(true);
});

test("a built-in task with a model marked without tools is a 400; a command agent may use it; unknown models pass", async () => {
  const refused = await t.call("POST", "/api/tasks", {
    token: key,
    body: { prompt: "fix it", model: "@cf/qwen/qwen2.5-coder-32b-instruct" },
  });
  expect(refused.status).toBe(400);
  const body = await refused.json();
  expect(body.error.code).toBe("model_without_tools");
  expect(body.error.message).toContain("GET /v1/models");
  expect((await t.edge.db.execute("SELECT COUNT(*) AS n FROM tasks")).rows[0]!.n).toBe(0);

  const command = await t.call("POST", "/api/tasks", {
    token: key,
    body: { prompt: "fix it", model: "@cf/google/gemma-3-12b-it", agent: { type: "command", command: "true" } },
  });
  expect(command.status).toBe(201);
  const capable = await t.call("POST", "/api/tasks", {
    token: key,
    body: { prompt: "fix it", model: "@cf/qwen/qwen3-30b-a3b-fp8" },
  });
  expect(capable.status).toBe(201);
  const unknown = await t.call("POST", "/api/tasks", { token: key, body: { prompt: "fix it", model: "llama3.1:8b" } });
  expect(unknown.status).toBe(201);
});
