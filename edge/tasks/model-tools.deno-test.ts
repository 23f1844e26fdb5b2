// Under Deno.serve: a built-in task naming a model without tool calling is a 400 at submission, and
// GET /v1/models says which models can call tools.
import assert from "node:assert/strict";
import { loadEdgeConfig } from "../config.ts";
import { createEdge } from "../compose.ts";

Deno.test("a built-in task with a model marked without tools is refused at POST /api/tasks under Deno", async () => {
  const dir = await Deno.makeTempDir();
  const edge = await createEdge(loadEdgeConfig({ SAM_DATA_DIR: dir }), { log: () => {} });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, edge.app.fetch);
  const url = `http://127.0.0.1:${server.addr.port}`;
  const call = (path: string, token: string, body?: unknown) =>
    fetch(`${url}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  try {
    const created = await call("/api/keys", edge.admin.token, { name: "alice" });
    assert.equal(created.status, 201);
    const { key } = await created.json();
    const refused = await call("/api/tasks", key, { prompt: "fix it", model: "@cf/google/gemma-3-12b-it" });
    assert.equal(refused.status, 400);
    assert.equal((await refused.json()).error.code, "model_without_tools");

    const models = await (await call("/v1/models", key)).json() as {
      data: { id: string; capabilities: { tools: boolean } }[];
    };
    assert.equal(models.data.find((m) => m.id === "@cf/google/gemma-3-12b-it")!.capabilities.tools, false);
    assert.equal(models.data.find((m) => m.id === "@cf/qwen/qwen3-30b-a3b-fp8")!.capabilities.tools, true);
  } finally {
    await server.shutdown();
    await edge.close();
    await Deno.remove(dir, { recursive: true });
  }
});
