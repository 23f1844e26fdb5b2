// Delivery through the Deno-served edge: edge/main.ts under Deno with the local provider starting the real
// agent binary, a real git remote (git http-backend, Basic auth) and a Forgejo API stand-in. A task submitted
// with `repo.push` is followed over SSE to its end, which names the branch and the pull request.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startForgeFake } from "../agent/testing/forge-fake.ts";
import { createBareRepo, gitIn, startGitHttpServer } from "../agent/testing/git-http-server.ts";
import { readUntil } from "../shared/testing/read-until.ts";

const root = new URL("..", import.meta.url).pathname;
const ADMIN = "samadm_delivery_deno_test_0123456789";
const SECRET = "forgejo_token_deno_5150";

Deno.test({
  name: "a task with repo.push ends as a Forgejo pull request, followed over SSE from the Deno-served edge",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const base = mkdtempSync(join(tmpdir(), "sam-delivery-deno-"));
    const bare = createBareRepo(join(base, "remotes"), "acme/widgets", { "hello.txt": "hello world\n" });
    const git = await startGitHttpServer({ root: join(base, "remotes"), user: "alice", password: SECRET });
    const forgejo = await startForgeFake({ kind: "gitea", token: SECRET, owner: "acme", repo: "widgets" });
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "edge/main.ts"],
      cwd: root,
      env: {
        SAM_PORT: "0",
        SAM_DATA_DIR: join(base, "edge"),
        SAM_ADMIN_TOKEN: ADMIN,
        SAM_AGENT_BINARY: join(root, "agent", "dist", "sam-agent"),
        SAM_HEARTBEAT_INTERVAL: "1s",
        // Set on the edge, handed to its local agents: who SAM's commits are by.
        SAM_GIT_AUTHOR_NAME: "Deno Deliverer",
        SAM_GIT_AUTHOR_EMAIL: "deno@sam.example",
      },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    try {
      const url = (await readUntil(child.stdout, /listening on (http:\/\/[\d.]+:\d+)/, 30_000))[1]!;
      const api = (path: string, token: string, body?: unknown) =>
        fetch(`${url}${path}`, {
          method: body === undefined ? "GET" : "POST",
          headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      const key = (await (await api("/api/keys", ADMIN, { name: "alice" })).json()).key as string;

      const refused = await api("/api/tasks", key, {
        prompt: "x",
        repo: { url: `${git.url}/acme/widgets.git`, push: { pullRequest: { forge: "bitbucket" } } },
      });
      assert.equal(refused.status, 400);
      assert.match((await refused.json()).error.message, /forge must be github, gitea or forgejo/);

      const res = await api("/api/tasks", key, {
        prompt: "Say goodbye",
        repo: {
          url: `${git.url}/acme/widgets.git`,
          credential: `alice:${SECRET}`,
          push: { branch: "sam/goodbye", pullRequest: { forge: "forgejo", apiBase: forgejo.apiBase } },
        },
        agent: { type: "command", command: "sed -i s/hello/goodbye/ hello.txt" },
      });
      assert.equal(res.status, 201);
      const task = await res.json();

      const stream = await fetch(`${url}/api/tasks/${task.id}/events?follow=1`, {
        headers: { Authorization: `Bearer ${key}` },
      });
      assert.match(stream.headers.get("content-type") ?? "", /^text\/event-stream/);
      const text = await stream.text(); // the edge closes the stream after `end`
      const end = JSON.parse(/event: end\ndata: (.*)/.exec(text)![1]!);
      assert.equal(end.status, "succeeded");
      assert.equal(end.delivery.status, "delivered");
      assert.equal(end.delivery.branch, "sam/goodbye");
      assert.deepEqual(end.delivery.pullRequest, {
        number: 1,
        url: "https://codeberg.org/acme/widgets/pulls/1",
        existing: false,
      });
      assert.match(text, /delivery: pushed branch sam\/goodbye/);
      assert.ok(!text.includes(SECRET));

      assert.equal(gitIn(bare, ["rev-parse", "sam/goodbye"]).trim(), end.delivery.commit);
      assert.equal(gitIn(bare, ["show", "sam/goodbye:hello.txt"]), "goodbye world\n");
      assert.equal(
        gitIn(bare, ["log", "-1", "--format=%an <%ae>|%cn <%ce>", "sam/goodbye"]).trim(),
        "Deno Deliverer <deno@sam.example>|Deno Deliverer <deno@sam.example>",
      );
      assert.equal(forgejo.pulls.length, 1);
      assert.equal(forgejo.pulls[0]!.head, "sam/goodbye");
      assert.equal(forgejo.pulls[0]!.base, "main");
      assert.equal(forgejo.requests.find((r) => r.method === "POST")!.auth, `token ${SECRET}`);
    } finally {
      child.kill("SIGINT");
      await child.status;
      await child.stdout.cancel().catch(() => {});
      await child.stderr.cancel().catch(() => {});
      await git.close();
      await forgejo.close();
      rmSync(base, { recursive: true, force: true });
    }
  },
});
