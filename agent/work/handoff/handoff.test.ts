/**
 * Delivery through a real git remote (git http-backend behind Basic auth) and forge API stand-ins, driven
 * through the task executor as a dispatched task would be. A git wrapper first on PATH records every argv.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TaskDispatch, TaskResult } from "../../../shared/wire/task.ts";
import type { TaskExecutor } from "../../contracts.ts";
import { type ForgeFake, githubSecondaryRateLimit, startForgeFake } from "../../testing/forge-fake.ts";
import { createBareRepo, type GitHttpServer, gitIn, startGitHttpServer } from "../../testing/git-http-server.ts";
import { WORK_DEFAULTS, type WorkConfig } from "../config.ts";
import { createTaskExecutor } from "../executor.ts";
import { type FakeEdge, fetchControlPlane, memoryRecorder, startFakeEdge, until } from "../../testing/fake-edge.ts";

const USER = "alice";
const SECRET = "ghp_push_s3cret_4242";
let base: string;
let bare: string;
let git: GitHttpServer;
let github: ForgeFake;
let gitea: ForgeFake;
let edge: FakeEdge;
let argvLog: string;
let env: Record<string, string>;
const executors: TaskExecutor[] = [];
const recorders: ReturnType<typeof memoryRecorder>[] = [];
let n = 0;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), "sam-handoff-"));
  const root = join(base, "remotes");
  bare = createBareRepo(root, "acme/widgets", { "hello.txt": "hello world\n" });
  // Reads are public, pushes need the credential: a wrong credential still clones, and fails at the push.
  git = await startGitHttpServer({ root, user: USER, password: SECRET, anonymousRead: true });
  github = await startForgeFake({ kind: "github", token: SECRET, owner: "acme", repo: "widgets" });
  gitea = await startForgeFake({ kind: "gitea", token: SECRET, owner: "acme", repo: "widgets" });
  edge = startFakeEdge();
  const bin = join(base, "bin");
  mkdirSync(bin);
  argvLog = join(base, "argv.log");
  writeFileSync(join(bin, "git"), `#!/bin/sh\nprintf '%s\\n' "$*" >> ${argvLog}\nexec /usr/bin/git "$@"\n`);
  chmodSync(join(bin, "git"), 0o755);
  env = { PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}`, HOME: process.env.HOME ?? "/tmp" };
});

afterAll(async () => {
  await Promise.all(executors.map((e) => e.shutdown().catch(() => {})));
  await edge.stop();
  await git.close();
  await github.close();
  await gitea.close();
  rmSync(base, { recursive: true, force: true });
});

function executor(over: Partial<WorkConfig> = {}) {
  const events = memoryRecorder();
  recorders.push(events);
  const config: WorkConfig = {
    ...WORK_DEFAULTS,
    dataDir: join(base, `data-${++n}`),
    workspaceMode: "host",
    killGraceMs: 500,
    retryBackoffMs: 50,
    gitAuthor: { name: "SAM Bot", email: "bot@sam.example" },
    gitCommitter: { name: "SAM Node", email: "node@sam.example" },
    ...over,
  };
  const ex = createTaskExecutor({ config, events, controlPlane: fetchControlPlane(edge.url, edge.token), env });
  executors.push(ex);
  return ex;
}

const remoteUrl = () => `${git.url}/acme/widgets.git`;

function dispatch(
  push: NonNullable<TaskDispatch["repo"]>["push"],
  o: { credential?: string; command?: string; taskId?: string } = {},
): TaskDispatch {
  return {
    taskId: o.taskId ?? `t_push${++n}`,
    prompt: "Say goodbye instead of hello\n\nin hello.txt",
    agent: { type: "command", command: o.command ?? "sed -i s/hello/goodbye/ hello.txt" },
    repo: { url: remoteUrl(), credential: o.credential ?? `${USER}:${SECRET}`, push },
    inference: { baseUrl: "http://127.0.0.1:9/v1", token: "samtask_x" },
    timeoutMs: 30_000,
  };
}

async function run(d: TaskDispatch, over: Partial<WorkConfig> = {}): Promise<TaskResult> {
  await executor(over).start(d);
  return until(`the result of ${d.taskId}`, () => edge.results.get(d.taskId), 25_000);
}

describe("delivery to a real git remote", () => {
  test(
    "the change lands as one commit on a new branch sam/<task id>, by the configured identity, with the task id trailer; the PR opens once",
    async () => {
      const d = dispatch({ pullRequest: { forge: "github", apiBase: github.apiBase, title: "Say goodbye" } });
      const result = await run(d);
      expect(result.status).toBe("succeeded");
      const delivery = result.delivery!;
      expect(delivery).toMatchObject({
        status: "delivered",
        branch: `sam/${d.taskId}`,
        pullRequest: { number: 1, existing: false },
      });
      expect(delivery.pullRequest!.url).toBe("https://github.com/acme/widgets/pull/1");
      expect(delivery.branchUrl).toBe(`${git.url}/acme/widgets/tree/sam/${d.taskId}`);
      // On the remote: the branch points at the reported commit, one commit past main, holding exactly the change.
      expect(gitIn(bare, ["rev-parse", `refs/heads/sam/${d.taskId}`]).trim()).toBe(delivery.commit!);
      expect(gitIn(bare, ["rev-list", "--count", `main..sam/${d.taskId}`]).trim()).toBe("1");
      expect(gitIn(bare, ["show", `sam/${d.taskId}:hello.txt`])).toBe("goodbye world\n");
      expect(gitIn(bare, ["log", "-1", "--format=%an <%ae>|%cn <%ce>", delivery.commit!]).trim()).toBe(
        "SAM Bot <bot@sam.example>|SAM Node <node@sam.example>",
      );
      expect(gitIn(bare, ["log", "-1", "--format=%B", delivery.commit!]).trim()).toBe(
        `Say goodbye instead of hello\n\nSAM-Task-Id: ${d.taskId}`,
      );
      expect(gitIn(bare, ["rev-parse", "main"]).trim()).toBe(gitIn(bare, ["rev-parse", `sam/${d.taskId}^`]).trim());
      // The PR: one POST, head the new branch, base the remote's default branch, the token as a Bearer.
      const posts = github.requests.filter((r) => r.method === "POST");
      expect(posts.length).toBe(1);
      expect(posts[0]!.path).toBe("/repos/acme/widgets/pulls");
      expect(posts[0]!.body).toMatchObject({
        head: `sam/${d.taskId}`,
        base: "main",
        title: "Say goodbye",
        draft: false,
      });
      expect(posts[0]!.auth).toBe(`Bearer ${SECRET}`);
      // The patch stays in the result, and the steps show where the time went.
      expect(result.patch).toContain("+goodbye world");
      expect(result.steps!.map((s) => s.name)).toEqual(["clone", "agent", "diff", "commit", "push", "pull_request"]);
      // The log (what SSE followers see) tells the delivery's story.
      const lines = edge.linesOf(d.taskId).join("\n");
      expect(lines).toContain(`delivery: pushed branch sam/${d.taskId}`);
      expect(lines).toContain("delivery: opened pull request #1 — https://github.com/acme/widgets/pull/1");
    },
    40_000,
  );

  test("a second task on the same branch name does not overwrite it; its work stays in the result", async () => {
    const first = dispatch({ branch: "feature/greeting" });
    const r1 = await run(first);
    expect(r1.delivery).toMatchObject({ status: "delivered", branch: "feature/greeting" });
    const second = dispatch({ branch: "feature/greeting" }, { command: "echo extra >> hello.txt" });
    const r2 = await run(second);
    expect(r2.status).toBe("succeeded");
    expect(r2.delivery).toMatchObject({ status: "failed", code: "branch_exists", branch: "feature/greeting" });
    expect(r2.delivery!.reason).toContain("already exists on the remote");
    expect(r2.patch).toContain("+extra");
    expect(gitIn(bare, ["rev-parse", "refs/heads/feature/greeting"]).trim()).toBe(r1.delivery!.commit!);
  }, 60_000);

  test("the remote's default branch is refused before anything is sent", async () => {
    const before = gitIn(bare, ["rev-parse", "main"]).trim();
    const r = await run(dispatch({ branch: "main" }));
    expect(r.delivery).toMatchObject({ status: "failed", code: "default_branch" });
    expect(gitIn(bare, ["rev-parse", "main"]).trim()).toBe(before);
  }, 40_000);

  test("a branch a server hook protects is reported as protected_branch", async () => {
    const hook = join(bare, "hooks", "pre-receive");
    writeFileSync(
      hook,
      '#!/bin/sh\nwhile read old new ref; do case "$ref" in refs/heads/release/*) echo "error: GH006: Protected branch update failed for $ref." >&2; exit 1;; esac; done\n',
    );
    chmodSync(hook, 0o755);
    try {
      const r = await run(dispatch({ branch: "release/next" }));
      expect(r.status).toBe("succeeded");
      expect(r.delivery).toMatchObject({ status: "failed", code: "protected_branch", branch: "release/next" });
      expect(r.patch).toContain("+goodbye world");
      expect(gitIn(bare, ["branch", "--list", "release/next"]).trim()).toBe("");
    } finally {
      rmSync(hook);
    }
  }, 40_000);

  test("a wrong credential fails the delivery, the task still succeeds and keeps its patch", async () => {
    const wrong = "ghp_wrong_token_0000";
    const pushesBefore = git.requests.filter((r) => r.path.endsWith("git-receive-pack") && r.authorized).length;
    const r = await run(
      dispatch({ pullRequest: { forge: "github", apiBase: github.apiBase } }, { credential: `${USER}:${wrong}` }),
    );
    expect(r.status).toBe("succeeded");
    expect(r.delivery).toMatchObject({ status: "failed", code: "auth" });
    expect(r.delivery!.reason).toContain("refused the credential");
    expect(r.patch).toContain("+goodbye world");
    expect(git.requests.filter((x) => x.path.endsWith("git-receive-pack") && x.authorized).length).toBe(pushesBefore);
    expect(JSON.stringify(r)).not.toContain(wrong);
  }, 40_000);

  test("no change: nothing is pushed", async () => {
    const d = dispatch({}, { command: "true" });
    const r = await run(d);
    expect(r.delivery).toEqual({ status: "skipped", reason: "no changes: nothing was pushed" });
    expect(gitIn(bare, ["branch", "--list", `sam/${d.taskId}`]).trim()).toBe("");
  }, 40_000);

  test("an open pull request for the branch is reported by its URL — GitHub's 422 and Forgejo's 409", async () => {
    for (const forge of [github, gitea]) {
      const taskId = `t_exists_${forge.kind}`;
      forge.pulls.push({
        number: 7,
        title: "earlier",
        body: "",
        head: `sam/${taskId}`,
        base: "main",
        draft: false,
        html_url: `https://forge.example/acme/widgets/pulls/7`,
      });
      const before = forge.requests.length;
      const r = await run(
        dispatch({ pullRequest: { forge: forge.kind === "github" ? "github" : "forgejo", apiBase: forge.apiBase } }, {
          taskId,
        }),
      );
      expect(r.delivery).toMatchObject({
        status: "delivered",
        branch: `sam/${taskId}`,
        pullRequest: { number: 7, url: "https://forge.example/acme/widgets/pulls/7", existing: true },
      });
      const calls = forge.requests.slice(before);
      expect(calls.map((c) => c.method)).toEqual(["POST", "GET"]);
      if (forge.kind === "gitea") expect(calls[0]!.auth).toBe(`token ${SECRET}`);
      if (forge.kind === "github") expect(calls[1]!.path).toContain(`head=acme%3Asam%2F${taskId}`);
    }
  }, 60_000);

  test(
    "a pull request the forge refuses (404) leaves the pushed branch reported, the delivery failed, the patch kept",
    async () => {
      github.script.push({
        status: 404,
        json: {
          message: "Not Found",
          documentation_url: "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
          status: "404",
        },
      });
      const d = dispatch({ pullRequest: { forge: "github", apiBase: github.apiBase } });
      const r = await run(d);
      expect(r.status).toBe("succeeded");
      expect(r.delivery).toMatchObject({ status: "failed", code: "pull_request_failed", branch: `sam/${d.taskId}` });
      expect(r.delivery!.reason).toBe(
        `the branch was pushed, but the pull request was not opened: no repository acme/widgets at ${github.apiBase}, or the credential cannot see it (404: Not Found)`,
      );
      expect(gitIn(bare, ["rev-parse", `sam/${d.taskId}`]).trim()).toBe(r.delivery!.commit!);
      expect(r.patch).toContain("+goodbye world");
    },
    40_000,
  );

  test("a secondary rate limit (403 with retry-after) is waited out and retried: the PR opens once", async () => {
    github.script.push(githubSecondaryRateLimit(1));
    const before = github.requests.length;
    const d = dispatch({ pullRequest: { forge: "github", apiBase: github.apiBase, draft: true } });
    const r = await run(d);
    expect(r.delivery).toMatchObject({ status: "delivered", pullRequest: { existing: false } });
    const posts = github.requests.slice(before).filter((x) => x.method === "POST");
    expect(posts.length).toBe(2);
    expect(github.pulls.filter((p) => p.head === `sam/${d.taskId}`).length).toBe(1);
    expect(github.pulls.find((p) => p.head === `sam/${d.taskId}`)!.draft).toBe(true);
    expect(edge.linesOf(d.taskId).join("\n")).toMatch(
      /delivery: the forge answered 403: You have exceeded a secondary rate limit.*retrying in 1 s/,
    );
  }, 40_000);

  test("the credential is in no argv, log line, event or result, and not in the task's environment", async () => {
    const d = dispatch({ pullRequest: { forge: "github", apiBase: github.apiBase } }, {
      command: "sed -i s/hello/hi/ hello.txt; env > ../task-env.txt; env | grep -c ghp_ || true",
    });
    const r = await run(d);
    expect(r.delivery!.status).toBe("delivered");
    expect(edge.linesOf(d.taskId)).toContain("0");
    const argv = readFileSync(argvLog, "utf8");
    expect(argv).toContain(
      `push --porcelain --no-verify --force-with-lease=refs/heads/sam/${d.taskId}: -- ${remoteUrl()}`,
    );
    expect(argv).not.toContain(SECRET);
    for (const e of edge.logs.values()) expect(JSON.stringify(e)).not.toContain(SECRET);
    for (const res of edge.results.values()) expect(JSON.stringify(res)).not.toContain(SECRET);
    for (const rec of recorders) expect(JSON.stringify(rec.events)).not.toContain(SECRET);
  }, 40_000);

  test("the operator may let the task's own git use the credential (SAM_TASK_SEES_REPO_CREDENTIAL)", async () => {
    const d = dispatch({}, {
      command:
        `git ls-remote ${remoteUrl()} HEAD >/dev/null && git push -q ${remoteUrl()} HEAD:refs/heads/by-task-${n} && echo task-pushed`,
    });
    const r = await run(d, { exposeRepoCredential: true });
    expect(r.status).toBe("succeeded");
    expect(edge.linesOf(d.taskId)).toContain("task-pushed");
    const denied = dispatch({}, { command: `git push -q ${remoteUrl()} HEAD:refs/heads/by-task-denied` });
    const r2 = await run(denied);
    expect(r2.status).toBe("failed");
    expect(existsSync(join(bare, "refs", "heads", "by-task-denied"))).toBe(false);
  }, 60_000);
});
