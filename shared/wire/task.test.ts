import { describe, expect, test } from "bun:test";
import * as v from "valibot";
import { HttpError } from "../errors.ts";
import { parseOrThrow } from "../validate.ts";
import { TaskSubmission } from "./task.ts";

describe("TaskSubmission", () => {
  test("a minimal submission gets the built-in agent and no labels", () => {
    expect(v.parse(TaskSubmission, { prompt: "fix the bug" })).toEqual({
      prompt: "fix the bug",
      agent: { type: "builtin" },
      labels: {},
    });
  });

  test("a command task with a repo", () => {
    const t = v.parse(TaskSubmission, {
      prompt: "edit",
      repo: { url: "https://github.com/acme/app.git", branch: "feature/x" },
      agent: { type: "command", command: "sed -i s/a/b/ README.md" },
      labels: { team: "core" },
    });
    expect(t.agent).toEqual({ type: "command", command: "sed -i s/a/b/ README.md" });
  });

  test.each([
    [{}, /^prompt: /],
    [{ prompt: "" }, /^prompt: prompt must not be empty/],
    [{ prompt: 5 }, /^prompt: /],
    [{ prompt: "x", extra: 1 }, /extra/],
    [{ prompt: "x", repo: { url: "--upload-pack=evil" } }, /^repo\.url: /],
    [{ prompt: "x", repo: { url: "https://x/y", branch: "../../etc" } }, /^repo\.branch: /],
    [{ prompt: "x", repo: { url: "https://x/y", branch: "-f" } }, /^repo\.branch: /],
    [{ prompt: "x", agent: { type: "command" } }, /^agent\.command: /],
    [{ prompt: "x", agent: { type: "shell", command: "ls" } }, /^agent\.type: /],
    [{ prompt: "x", model: "a b" }, /^model: /],
    [{ prompt: "x", labels: { "bad key!": "v" } }, /labels/],
  ])("refuses %j with a message naming the field", (input, message) => {
    try {
      parseOrThrow(TaskSubmission, input);
      throw new Error("accepted");
    } catch (err) {
      expect(err).toBeInstanceOf(HttpError);
      expect((err as HttpError).status).toBe(400);
      expect((err as HttpError).message).toMatch(message);
    }
  });
});
