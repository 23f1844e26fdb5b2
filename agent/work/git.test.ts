import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cloneRepo, collectChange, gitOutput, redactUrl, splitCredential } from "./git.ts";

const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp" };
const ident = {
  ...env,
  GIT_AUTHOR_NAME: "t",
  GIT_AUTHOR_EMAIL: "t@example.com",
  GIT_COMMITTER_NAME: "t",
  GIT_COMMITTER_EMAIL: "t@example.com",
};
let base: string;
let origin: string;

async function git(dir: string, ...args: string[]) {
  return gitOutput(dir, ident, args);
}

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), "sam-git-"));
  origin = join(base, "origin");
  mkdirSync(origin);
  await git(origin, "init", "-q", "-b", "main");
  writeFileSync(join(origin, "README.md"), "# demo\n");
  await git(origin, "add", "-A");
  await git(origin, "commit", "-qm", "first");
  writeFileSync(join(origin, "README.md"), "# demo\nsecond\n");
  await git(origin, "commit", "-qam", "second");
  await git(origin, "checkout", "-qb", "feature");
  writeFileSync(join(origin, "feature.txt"), "on the branch\n");
  await git(origin, "add", "-A");
  await git(origin, "commit", "-qm", "feature");
  await git(origin, "checkout", "-q", "main");
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

function dirs(name: string) {
  const dir = join(base, name);
  const metaDir = join(base, `${name}-meta`);
  mkdirSync(metaDir, { recursive: true });
  return { dir, metaDir };
}

describe("clone", () => {
  test("a shallow clone of the named branch", async () => {
    const d = dirs("c1");
    const lines: string[] = [];
    const res = await cloneRepo({ url: origin, branch: "feature", ...d, env, onLine: (_s, l) => lines.push(l) });
    expect(res.ok).toBe(true);
    expect(readFileSync(join(d.dir, "feature.txt"), "utf8")).toBe("on the branch\n");
    expect((await git(d.dir, "rev-list", "--count", "HEAD")).trim()).toBe("1");
  }, 15_000);

  test("a missing branch fails with git's reason", async () => {
    const d = dirs("c2");
    const res = await cloneRepo({ url: origin, branch: "nope", ...d, env, onLine: () => {} });
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.error).toContain("nope");
  }, 15_000);

  test(
    "a credential reaches an authenticated HTTP remote through askpass — never argv, .git/config or the log",
    async () => {
      const user = "x-access-token";
      const secret = "ghp_s3cr3tT0ken";
      // The real smart-HTTP protocol: git http-backend as CGI behind Basic auth.
      const server = Bun.serve({
        port: 0,
        hostname: "127.0.0.1",
        async fetch(req) {
          if (req.headers.get("authorization") !== `Basic ${btoa(`${user}:${secret}`)}`) {
            return new Response("auth required", { status: 401, headers: { "WWW-Authenticate": 'Basic realm="git"' } });
          }
          const url = new URL(req.url);
          const cgi = Bun.spawn(["git", "http-backend"], {
            env: {
              ...env,
              GIT_PROJECT_ROOT: base,
              GIT_HTTP_EXPORT_ALL: "1",
              PATH_INFO: url.pathname.replace(/^\/git/, ""),
              REQUEST_METHOD: req.method,
              QUERY_STRING: url.search.slice(1),
              CONTENT_TYPE: req.headers.get("content-type") ?? "",
              HTTP_CONTENT_ENCODING: req.headers.get("content-encoding") ?? "",
              HTTP_GIT_PROTOCOL: req.headers.get("git-protocol") ?? "",
              REMOTE_USER: user,
              REMOTE_ADDR: "127.0.0.1",
            },
            stdin: req.body ? new Uint8Array(await req.arrayBuffer()) : "ignore",
            stdout: "pipe",
          });
          const out = new Uint8Array(await new Response(cgi.stdout).arrayBuffer());
          const sep = Buffer.from(out).indexOf("\r\n\r\n");
          const headers = new Headers();
          let status = 200;
          for (const line of Buffer.from(out.subarray(0, sep)).toString().split("\r\n")) {
            const [k, ...rest] = line.split(":");
            if (k!.toLowerCase() === "status") status = Number(rest.join(":").trim().split(" ")[0]);
            else headers.set(k!, rest.join(":").trim());
          }
          return new Response(out.subarray(sep + 4), { status, headers });
        },
      });
      // A git wrapper first on PATH records every argv git is started with.
      const bin = join(base, "bin");
      mkdirSync(bin, { recursive: true });
      const argvLog = join(base, "argv.log");
      writeFileSync(join(bin, "git"), `#!/bin/sh\necho "$@" >> ${argvLog}\nexec /usr/bin/git "$@"\n`);
      chmodSync(join(bin, "git"), 0o755);
      try {
        const d = dirs("c3");
        const lines: string[] = [];
        const url = `http://127.0.0.1:${server.port}/git/origin`;
        const wrapped = { ...env, PATH: `${bin}:${env.PATH}` };
        const denied = await cloneRepo({ url, ...dirs("c3-denied"), env: wrapped, onLine: () => {} });
        expect(denied.ok).toBe(false);
        const res = await cloneRepo({ url, credential: secret, ...d, env: wrapped, onLine: (_s, l) => lines.push(l) });
        expect(res.ok).toBe(true);
        expect(readFileSync(join(d.dir, "README.md"), "utf8")).toBe("# demo\nsecond\n");
        expect(readFileSync(argvLog, "utf8")).toContain(`clone --depth 1 --no-tags -- ${url}`);
        expect(readFileSync(argvLog, "utf8")).not.toContain(secret);
        expect(readFileSync(join(d.dir, ".git", "config"), "utf8")).not.toContain(secret);
        expect(lines.join("\n")).not.toContain(secret);
      } finally {
        await server.stop(true);
      }
    },
    20_000,
  );

  test("credentials and URLs are redacted before they are shown", () => {
    expect(redactUrl("https://user:pw@github.com/o/r.git")).toBe("https://***@github.com/o/r.git");
    expect(splitCredential("ghp_abc")).toEqual({ username: "x-access-token", password: "ghp_abc" });
    expect(splitCredential("alice:pw:with:colons")).toEqual({ username: "alice", password: "pw:with:colons" });
  });
});

describe("collectChange", () => {
  test("reports edits, new files and the agent's own commits against the cloned commit", async () => {
    const d = dirs("d1");
    const res = await cloneRepo({ url: origin, ...d, env, onLine: () => {} });
    if (!res.ok) throw new Error(res.error);
    writeFileSync(join(d.dir, "README.md"), "# demo\nsecond\nthird\n");
    writeFileSync(join(d.dir, "new.txt"), "brand new\n");
    await git(d.dir, "add", "new.txt");
    await git(d.dir, "commit", "-qm", "agent commit");
    writeFileSync(join(d.dir, "untracked.txt"), "also new\n");
    const change = await collectChange(d.dir, env, res.head, 1_000_000);
    expect(change.diffStat).toContain("README.md");
    expect(change.diffStat).toContain("new.txt");
    expect(change.diffStat).toContain("untracked.txt");
    expect(change.diffStat).toContain("3 files changed");
    expect(change.patch).toContain("+third");
    expect(change.patch).toContain("+brand new");
    expect(change.patchTruncated).toBe(false);
  }, 15_000);

  test("a large patch is cut at a line boundary and marked truncated", async () => {
    const d = dirs("d2");
    const res = await cloneRepo({ url: origin, ...d, env, onLine: () => {} });
    if (!res.ok) throw new Error(res.error);
    writeFileSync(join(d.dir, "big.txt"), Array.from({ length: 5000 }, (_, i) => `line ${i}`).join("\n"));
    const change = await collectChange(d.dir, env, res.head, 4096);
    expect(change.patchTruncated).toBe(true);
    expect(Buffer.byteLength(change.patch)).toBeLessThanOrEqual(4096);
    expect(change.patch.endsWith("\n")).toBe(true);
    expect(change.diffStat).toContain("big.txt");
  }, 15_000);
});
