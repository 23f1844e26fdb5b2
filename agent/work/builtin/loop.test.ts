import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runInGroup } from "../process-group.ts";
import { runBuiltinAgent } from "./loop.ts";
import { createToolBox } from "./tools.ts";
import { type ScriptedChat, startScriptedChat } from "../../../shared/testing/scripted-chat.ts";

let dir: string;
let model: ScriptedChat;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sam-loop-"));
  model = await startScriptedChat();
});
afterAll(async () => {
  await model.close();
  rmSync(dir, { recursive: true, force: true });
});

async function run(maxSteps = 5) {
  const tools = await createToolBox(
    dir,
    (c, o) => runInGroup(["sh", "-c", c], { cwd: dir, env: { PATH: process.env.PATH ?? "" }, ...o }),
    2_000,
  );
  const log: string[] = [];
  const outcome = await runBuiltinAgent({
    baseUrl: model.url,
    apiKey: "samtask_test",
    model: "m",
    prompt: "create hello.txt",
    tools,
    maxSteps,
    log: (l) => log.push(l),
  });
  return { outcome, log };
}

describe("built-in agent loop (real openai client against a scripted model)", () => {
  test("calls tools the model asks for, feeds results back, and ends with the model's summary", async () => {
    model.script = [
      { calls: [{ name: "write_file", args: { path: "hello.txt", content: "hi there\n" } }] },
      { calls: [{ name: "run_command", args: { command: "cat hello.txt" } }] },
      { text: "Created hello.txt with a greeting." },
    ];
    const { outcome, log } = await run();
    expect(outcome).toEqual({ ok: true, summary: "Created hello.txt with a greeting.", steps: 3 });
    expect(readFileSync(join(dir, "hello.txt"), "utf8")).toBe("hi there\n");
    // The model saw the command's output in the tool message of round 3.
    const third = model.requests[2]!;
    expect(third.messages.at(-1)).toMatchObject({ role: "tool", content: "exit code 0\nhi there\n" });
    expect(model.authorizations[0]).toBe("Bearer samtask_test");
    expect(model.requests[0]!.tools!.map((t) => t.function.name)).toEqual([
      "read_file",
      "write_file",
      "list_files",
      "run_command",
    ]);
    expect(log.some((l) => l.includes("write_file"))).toBe(true);
  });

  test("a step limit stops a model that never finishes", async () => {
    model.script = Array.from({ length: 10 }, () => ({ calls: [{ name: "list_files", args: {} }] }));
    const { outcome } = await run(3);
    expect(outcome.ok).toBe(false);
    expect(outcome).toMatchObject({ steps: 3 });
    if (!outcome.ok) expect(outcome.error).toContain("step limit reached");
  });

  test("an upstream error fails at once with the upstream's message", async () => {
    model.script = [
      { status: 503, message: "no inference upstream is configured: set CF_ACCOUNT_ID and CF_API_TOKEN" },
      { text: "never reached" },
    ];
    const started = Date.now();
    const { outcome } = await run();
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) {
      expect(outcome.error).toBe(
        "inference failed (503): no inference upstream is configured: set CF_ACCOUNT_ID and CF_API_TOKEN",
      );
    }
    expect(Date.now() - started).toBeLessThan(3_000);
    model.script = [];
  });

  test("a transient upstream error (502) is retried and the task carries on", async () => {
    model.script = [{ status: 502, message: "bad gateway" }, { text: "Done after a retry." }];
    const { outcome, log } = await run();
    expect(outcome).toEqual({ ok: true, summary: "Done after a retry.", steps: 1 });
    expect(log.some((l) => l.includes("inference failed (502): bad gateway; retrying"))).toBe(true);
  });
});
