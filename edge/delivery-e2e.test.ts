/**
 * Delivery end to end: an edge with the local provider starting the real `sam-agent` binary, a real git remote
 * (git http-backend behind Basic auth) and a GitHub API stand-in. A user submits a task with `repo.push`,
 * follows it over SSE, and finds the branch and the pull request in the result and on the admin page.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TaskView } from "../shared/wire/api.ts";
import { ensureAgentBinary } from "../agent/testing/binary.ts";
import { type ForgeFake, startForgeFake } from "../agent/testing/forge-fake.ts";
import { createBareRepo, type GitHttpServer, gitIn, startGitHttpServer } from "../agent/testing/git-http-server.ts";
import { until } from "../shared/testing/until.ts";
import { ADMIN_TOKEN, startTestEdge, type TestEdge } from "./testing/test-edge.ts";
import { followTask } from "./testing/follow-task.ts";

const SECRET = "ghp_e2e_delivery_token_77";
let base: string;
let bare: string;
let git: GitHttpServer;
let github: ForgeFake;
let edge: TestEdge;

beforeAll(async () => {
  const binary = ensureAgentBinary();
  base = mkdtempSync(join(tmpdir(), "sam-delivery-e2e-"));
  bare = createBareRepo(join(base, "remotes"), "acme/widgets", { "hello.txt": "hello world\n" });
  git = await startGitHttpServer({ root: join(base, "remotes"), user: "x-access-token", password: SECRET });
  github = await startForgeFake({ kind: "github", token: SECRET, owner: "acme", repo: "widgets" });
  edge = await startTestEdge({ env: { SAM_AGENT_BINARY: binary, SAM_HEARTBEAT_INTERVAL: "1s" } });
}, 60_000);

afterAll(async () => {
  await edge?.stop();
  await git?.close();
  await github?.close();
  rmSync(base, { recursive: true, force: true });
}, 30_000);

async function follow(key: string, id: string) {
  return await followTask(edge.url, key, id);
}

describe("a task that ends as a pull request", () => {
  test(
    "submit with repo.push, follow over SSE: the branch is on the remote, the PR is open, the result and the admin page name both",
    async () => {
      const { key } = await edge.createKey("alice");
      const res = await edge.call("POST", "/api/tasks", {
        token: key,
        body: {
          prompt: "Say goodbye",
          repo: {
            url: `${git.url}/acme/widgets.git`,
            credential: SECRET,
            push: {
              commitMessage: "Say goodbye",
              pullRequest: { forge: "github", apiBase: github.apiBase, body: "From SAM." },
            },
          },
          agent: { type: "command", command: "sed -i s/hello/goodbye/ hello.txt" },
        },
      });
      expect(res.status).toBe(201);
      const task = (await res.json()) as TaskView;
      expect(task.repo).toEqual({
        url: `${git.url}/acme/widgets.git`,
        branch: null,
        push: {
          commitMessage: "Say goodbye",
          pullRequest: { forge: "github", apiBase: github.apiBase, body: "From SAM." },
        },
      });

      const { events, end } = await follow(key, task.id);
      const branch = `sam/${task.id}`;
      expect(end).toMatchObject({
        status: "succeeded",
        delivery: {
          status: "delivered",
          branch,
          pullRequest: { number: 1, url: "https://github.com/acme/widgets/pull/1" },
        },
      });
      const logs = events.filter((e) => e.type === "log").map((e) => e.message);
      expect(logs.some((l) => l.startsWith("delivery: committed "))).toBe(true);
      expect(logs).toContain(`delivery: opening a pull request ${branch} → main on acme/widgets (github)`);
      expect(logs).toContain("delivery: opened pull request #1 — https://github.com/acme/widgets/pull/1");
      const done = events.find((e) => e.type === "status" && e.status === "succeeded")!;
      expect(done.message).toBe(
        `succeeded, delivered to branch ${branch} — pull request #1 https://github.com/acme/widgets/pull/1`,
      );

      const view = await until("the result", async () => {
        const v = (await (await edge.call("GET", `/api/tasks/${task.id}`, { token: key })).json()) as TaskView;
        return v.result ? v : undefined;
      }, 10_000);
      expect(view.result!.delivery!.commit).toBe(gitIn(bare, ["rev-parse", branch]).trim());
      expect(gitIn(bare, ["show", `${branch}:hello.txt`])).toBe("goodbye world\n");
      expect(gitIn(bare, ["log", "-1", "--format=%an <%ae>%n%B", branch]).trim()).toBe(
        `SAM <sam@localhost>\nSay goodbye\n\nSAM-Task-Id: ${task.id}`,
      );
      expect(github.pulls).toMatchObject([{ head: branch, base: "main", title: "Say goodbye", body: "From SAM." }]);
      expect(JSON.stringify(view)).not.toContain(SECRET);
      expect(JSON.stringify(events)).not.toContain(SECRET);

      const page = await (await fetch(`${edge.url}/admin/tasks/${task.id}`, {
        headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
      }))
        .text();
      expect(page).toContain(`<a href="${git.url}/acme/widgets/tree/${branch}">${branch}</a>`);
      expect(page).toContain('<a href="https://github.com/acme/widgets/pull/1">#1</a>');
    },
    90_000,
  );

  test("an unknown field in repo.push is refused with a 400 naming it", async () => {
    const { key } = await edge.createKey("bob");
    const res = await edge.call("POST", "/api/tasks", {
      token: key,
      body: { prompt: "x", repo: { url: `${git.url}/acme/widgets.git`, push: { branch: "sam/x", force: true } } },
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { message: string; type: string } };
    expect(body.error.type).toBe("invalid_request_error");
    expect(body.error.message).toContain("force");
    const noToken = await edge.call("POST", "/api/tasks", {
      token: key,
      body: { prompt: "x", repo: { url: `${git.url}/acme/widgets.git`, push: { pullRequest: {} } } },
    });
    expect(noToken.status).toBe(400);
    expect(((await noToken.json()) as { error: { message: string } }).error.message).toContain(
      "repo.push.pullRequest needs repo.credential",
    );
  });
});
