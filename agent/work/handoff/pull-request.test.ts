import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type ForgeFake, githubSecondaryRateLimit, startForgeFake } from "../../testing/forge-fake.ts";
import { branchWebUrl, type ForgeTarget, forgeTarget } from "./forge.ts";
import { openPullRequest, type PullRequestInput } from "./pull-request.ts";

const TOKEN = "ghp_pr_token_31337";
let github: ForgeFake;
let gitea: ForgeFake;
let n = 0;

beforeAll(async () => {
  github = await startForgeFake({ kind: "github", token: TOKEN, owner: "acme", repo: "widgets" });
  gitea = await startForgeFake({ kind: "gitea", token: TOKEN, owner: "acme", repo: "widgets" });
});
afterAll(async () => {
  await github.close();
  await gitea.close();
});

function input(fake: ForgeFake, over: Partial<PullRequestInput> = {}): PullRequestInput & { lines: string[] } {
  const lines: string[] = [];
  const target: ForgeTarget = { kind: fake.kind, apiBase: fake.apiBase, owner: "acme", repo: "widgets", webUrl: null };
  return {
    target,
    token: TOKEN,
    head: `sam/t${++n}`,
    base: "main",
    title: "t",
    body: "b",
    draft: false,
    deadlineAt: Date.now() + 20_000,
    backoffMs: 20,
    requestTimeoutMs: 5_000,
    log: (l) => lines.push(l),
    lines,
    ...over,
  };
}

describe("opening a pull request", () => {
  test("401: a wrong token fails with the forge's own message, and the token is not in it", async () => {
    for (const fake of [github, gitea]) {
      const r = await openPullRequest(input(fake, { token: "wrong_token_x" }));
      expect(r).toMatchObject({ ok: false, auth: true });
      if (!r.ok) {
        expect(r.reason).toBe(
          `the forge refused the credential (401: ${
            fake.kind === "github" ? "Bad credentials" : "user does not exist [uid: 0, name: ]"
          })`,
        );
      }
    }
  });

  test("404: an unknown repository says where SAM looked", async () => {
    const i = input(github);
    const r = await openPullRequest({ ...i, target: { ...i.target, repo: "nope" } });
    expect(r).toMatchObject({ ok: false, auth: false });
    if (!r.ok) {
      expect(r.reason).toBe(
        `no repository acme/nope at ${github.apiBase}, or the credential cannot see it (404: Not Found)`,
      );
    }
  });

  test("403 without a rate limit is not retried", async () => {
    github.script.push({
      status: 403,
      json: {
        message: "Resource not accessible by personal access token",
        documentation_url: "https://docs.github.com/rest",
        status: "403",
      },
    });
    const before = github.requests.length;
    const r = await openPullRequest(input(github));
    expect(r).toMatchObject({ ok: false, auth: true });
    if (!r.ok) expect(r.reason).toContain("Resource not accessible by personal access token");
    expect(github.requests.length - before).toBe(1);
  });

  test("a 502 and a primary rate limit (x-ratelimit-remaining 0, reset) are retried; the PR opens once", async () => {
    github.script.push(
      { status: 502, json: { message: "Server Error" } },
      {
        status: 403,
        headers: { "x-ratelimit-remaining": "0", "x-ratelimit-reset": String(Math.floor(Date.now() / 1000)) },
        json: { message: "API rate limit exceeded for user ID 1.", status: "403" },
      },
    );
    const i = input(github);
    const r = await openPullRequest(i);
    expect(r).toMatchObject({ ok: true, existing: false });
    expect(github.pulls.filter((p) => p.head === i.head).length).toBe(1);
    expect(i.lines.length).toBe(2);
    expect(i.lines[1]).toContain("API rate limit exceeded");
  });

  test("a rate limit whose retry-after ends past the task's deadline is not waited for", async () => {
    github.script.push(githubSecondaryRateLimit(60));
    const before = github.requests.length;
    const r = await openPullRequest(input(github, { deadlineAt: Date.now() + 5_000 }));
    expect(r).toMatchObject({ ok: false, timedOut: true });
    if (!r.ok) expect(r.reason).toContain("would pass the task's deadline");
    expect(github.requests.length - before).toBe(1);
  });

  test("a draft on Gitea/Forgejo is a WIP: title (its API has no draft flag)", async () => {
    const i = input(gitea, { draft: true, title: "Fix it" });
    const r = await openPullRequest(i);
    expect(r.ok).toBe(true);
    expect(gitea.pulls.find((p) => p.head === i.head)!.title).toBe("WIP: Fix it");
  });
});

describe("which forge", () => {
  test("from the remote URL, or explicit; the API base follows, and can be given", () => {
    expect(forgeTarget("https://github.com/acme/widgets.git")).toEqual({
      kind: "github",
      apiBase: "https://api.github.com",
      owner: "acme",
      repo: "widgets",
      webUrl: "https://github.com/acme/widgets",
    });
    expect(forgeTarget("git@github.com:acme/widgets.git")).toMatchObject({
      kind: "github",
      apiBase: "https://api.github.com",
      webUrl: "https://github.com/acme/widgets",
    });
    expect(forgeTarget("https://codeberg.org/acme/widgets")).toMatchObject({
      kind: "gitea",
      apiBase: "https://codeberg.org/api/v1",
    });
    expect(forgeTarget("https://ghe.example.com/acme/widgets.git", { forge: "github" })).toMatchObject({
      kind: "github",
      apiBase: "https://ghe.example.com/api/v3",
    });
    expect(forgeTarget("ssh://git@git.example.com:2222/acme/widgets.git", { forge: "forgejo" })).toMatchObject({
      kind: "gitea",
      apiBase: "https://git.example.com/api/v1",
      owner: "acme",
      repo: "widgets",
    });
    expect(
      forgeTarget("https://git.example.com/acme/widgets.git", {
        forge: "gitea",
        apiBase: "https://api.example.com/v1/",
      }),
    ).toMatchObject({ apiBase: "https://api.example.com/v1" });
    expect(forgeTarget("https://git.example.com/acme/widgets.git")).toEqual({
      error: expect.stringContaining("cannot tell which forge git.example.com runs"),
    });
    expect(forgeTarget("/srv/repos/widgets")).toEqual({
      error: expect.stringContaining("a local path cannot take a pull request"),
    });
  });

  test("branch pages: GitHub tree/, Gitea src/branch/", () => {
    const gh = forgeTarget("https://github.com/acme/widgets") as ForgeTarget;
    expect(branchWebUrl(gh, "sam/t_1")).toBe("https://github.com/acme/widgets/tree/sam/t_1");
    const gt = forgeTarget("https://codeberg.org/acme/widgets") as ForgeTarget;
    expect(branchWebUrl(gt, "sam/t_1")).toBe("https://codeberg.org/acme/widgets/src/branch/sam/t_1");
  });
});
