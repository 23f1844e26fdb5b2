/**
 * The main job end to end (issue: running the work): an edge served over HTTP with the local provider
 * starting the real `sam-agent` binary, driven like a user with curl would — create a key, submit a task,
 * follow its events, read the result. Built-in tasks use the Cloudflare fake as the inference upstream.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TaskEventView, TaskView } from "../shared/wire/api.ts";
import { chatCompletion, type CloudflareFake, startCloudflareFake } from "./testing/cloudflare-fake.ts";
import { until } from "../shared/testing/until.ts";
import { startTestEdge, type TestEdge } from "./testing/test-edge.ts";
import { AGENT_BINARY, ensureAgentBinary } from "../agent/testing/binary.ts";
import { initRepo } from "../agent/testing/git-repo.ts";
import { followTask } from "./testing/follow-task.ts";

const BINARY = AGENT_BINARY;
let base: string;
let repo: string;
let cf: CloudflareFake;
let edge: TestEdge;
let bare: TestEdge;

beforeAll(async () => {
  ensureAgentBinary();
  base = mkdtempSync(join(tmpdir(), "sam-work-e2e-"));
  repo = initRepo(join(base, "repo"), { "hello.txt": "hello world\n" });
  cf = startCloudflareFake();
  const common = { SAM_AGENT_BINARY: BINARY, SAM_HEARTBEAT_INTERVAL: "1s" };
  edge = await startTestEdge({
    env: {
      ...common,
      CF_ACCOUNT_ID: cf.accountId,
      CF_API_TOKEN: cf.apiToken,
      SAM_CF_API_BASE: cf.apiBase,
      SAM_CF_GATEWAY_BASE: cf.gatewayBase,
    },
  });
  bare = await startTestEdge({ env: common });
}, 30_000);

afterAll(async () => {
  await edge?.stop();
  await bare?.stop();
  await cf?.close();
  rmSync(base, { recursive: true, force: true });
}, 30_000);

async function submit(t: TestEdge, key: string, body: unknown): Promise<TaskView> {
  const res = await t.call("POST", "/api/tasks", { token: key, body });
  expect(res.status).toBe(201);
  return (await res.json()) as TaskView;
}

/** `curl -N …/events?follow=1`: every SSE event until `end`. */
async function follow(t: TestEdge, key: string, id: string) {
  const followed = await followTask<{ status: string; error: string | null }>(t.url, key, id);
  expect(followed.contentType).toStartWith("text/event-stream");
  return followed;
}

async function finished(t: TestEdge, key: string, id: string): Promise<TaskView> {
  return until(`task ${id} to finish`, async () => {
    const view = (await (await t.call("GET", `/api/tasks/${id}`, { token: key })).json()) as TaskView;
    return ["succeeded", "failed", "cancelled"].includes(view.status) ? view : undefined;
  }, 20_000);
}

describe("a task from submission to result, on a real agent", () => {
  test(
    "a shell-command task edits a file in a git repo: its output streams live and the result carries the diff",
    async () => {
      const { key } = await edge.createKey("alice");
      const task = await submit(edge, key, {
        prompt: "say goodbye",
        repo: { url: repo },
        agent: {
          type: "command",
          command: 'echo "prompt: $SAM_TASK_PROMPT"; sed -i s/hello/goodbye/ hello.txt; echo edited',
        },
      });
      const { events, end } = await follow(edge, key, task.id);
      expect(end.status).toBe("succeeded");
      const logs = events.filter((e) => e.type === "log").map((e) => e.message);
      expect(logs).toContain("prompt: say goodbye");
      expect(logs.indexOf("prompt: say goodbye")).toBeLessThan(logs.indexOf("edited"));
      const statuses = events.filter((e) => e.type === "status").map((e) => e.status);
      expect(statuses).toEqual(expect.arrayContaining(["queued", "running", "succeeded"]));
      const view = await finished(edge, key, task.id);
      expect(view.result).toMatchObject({ status: "succeeded", exitCode: 0 });
      expect(view.result!.diffStat).toContain("hello.txt | 2 +-");
      expect(view.result!.patch).toContain("-hello world");
      expect(view.result!.patch).toContain("+goodbye world");
      expect(view.result!.steps!.map((s) => s.name)).toEqual(["clone", "agent", "diff"]);
    },
    40_000,
  );

  test(
    "a built-in task against the Cloudflare fake: the model's write_file lands, and the result says so",
    async () => {
      const { key } = await edge.createKey("bob");
      cf.replies.rest.push(
        {
          json: chatCompletion({
            content: null,
            tool_calls: [{
              id: "call_1",
              type: "function",
              function: {
                name: "write_file",
                arguments: JSON.stringify({ path: "GREETING.md", content: "# Hello from SAM\n" }),
              },
            }],
          }, { finish: "tool_calls" }),
        },
        { json: chatCompletion({ content: "Added GREETING.md." }) },
      );
      const task = await submit(edge, key, {
        prompt: "add a greeting file",
        repo: { url: repo },
        model: "@cf/qwen/qwen3-30b-a3b-fp8",
      });
      const view = await finished(edge, key, task.id);
      expect(view.status).toBe("succeeded");
      expect(view.result!.summary).toBe("Added GREETING.md.\n\nFiles written: GREETING.md");
      expect(view.result!.diffStat).toContain("GREETING.md");
      expect(view.result!.patch).toContain("+# Hello from SAM");
      const calls = cf.requests.filter((r) => r.endpoint === "rest");
      expect(calls.length).toBe(2);
      expect(JSON.stringify(calls[1]!.body)).toContain("wrote 17 bytes to GREETING.md");
    },
    40_000,
  );

  test("a built-in task with no upstream configured fails fast with the 503's message", async () => {
    const { key } = await bare.createKey("carol");
    const task = await submit(bare, key, { prompt: "anything" });
    const view = await finished(bare, key, task.id);
    expect(view.status).toBe("failed");
    expect(view.error).toStartWith("inference failed (503): ");
    expect(view.error).toContain("CF_ACCOUNT_ID");
    expect(view.phases.run).toBeLessThan(5_000);
  }, 40_000);
});
