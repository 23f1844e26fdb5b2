/**
 * Test support: a real git remote over smart HTTP — git's own `git http-backend` (CGI) behind a small HTTP
 * server with Basic auth, serving the bare repositories under `root` as `/<owner>/<repo>.git`. Written with
 * `node:http` and `node:child_process` only, so Bun tests and Deno tests use the same server.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { Buffer } from "node:buffer";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { git, initRepo } from "./git-repo.ts";

export type GitHttpServer = {
  url: string;
  root: string;
  /** Every request: method, path, and whether its credential was accepted. */
  requests: { method: string; path: string; authorized: boolean }[];
  close(): Promise<void>;
};

const baseEnv = () => ({ PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp" });

/** A bare repository `root/<name>.git` (name like `acme/widgets`) on branch main, holding `files` in one commit. */
export function createBareRepo(root: string, name: string, files: Record<string, string>): string {
  const work = mkdtempSync(join(tmpdir(), "sam-remote-src-"));
  try {
    initRepo(work, files, baseEnv());
    const bare = join(root, `${name}.git`);
    mkdirSync(dirname(bare), { recursive: true });
    git(root, ["clone", "-q", "--bare", work, bare], baseEnv());
    return bare;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Read a bare repository: `git <args>` in it. */
export function gitIn(bare: string, args: string[]): string {
  return git(bare, args, baseEnv());
}

async function bodyOf(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** `anonymousRead`: anyone may clone and fetch (a public repository); pushing always needs the credential. */
export async function startGitHttpServer(
  o: { root: string; user: string; password: string; anonymousRead?: boolean },
): Promise<GitHttpServer> {
  const requests: GitHttpServer["requests"] = [];
  const expected = `Basic ${Buffer.from(`${o.user}:${o.password}`).toString("base64")}`;
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const authorized = req.headers.authorization === expected;
    requests.push({ method: req.method ?? "GET", path: url.pathname, authorized });
    const body = await bodyOf(req);
    const writes = url.searchParams.get("service") === "git-receive-pack" || url.pathname.endsWith("/git-receive-pack");
    if (!authorized && (writes || !o.anonymousRead)) {
      res.writeHead(401, { "WWW-Authenticate": 'Basic realm="git"', "Content-Type": "text/plain" });
      res.end("authentication required\n");
      return;
    }
    const cgi = spawn("git", ["http-backend"], {
      env: {
        ...baseEnv(),
        GIT_PROJECT_ROOT: o.root,
        GIT_HTTP_EXPORT_ALL: "1",
        PATH_INFO: url.pathname,
        REQUEST_METHOD: req.method ?? "GET",
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: req.headers["content-type"] ?? "",
        CONTENT_LENGTH: String(body.length),
        HTTP_CONTENT_ENCODING: String(req.headers["content-encoding"] ?? ""),
        HTTP_GIT_PROTOCOL: String(req.headers["git-protocol"] ?? ""),
        REMOTE_USER: o.user,
        REMOTE_ADDR: "127.0.0.1",
      },
      stdio: ["pipe", "pipe", "ignore"],
    });
    cgi.stdin.end(body);
    const out = await bodyOf(cgi.stdout as unknown as IncomingMessage);
    const sep = out.indexOf("\r\n\r\n");
    const headers: Record<string, string> = {};
    let status = 200;
    for (const line of out.subarray(0, Math.max(0, sep)).toString().split("\r\n")) {
      const i = line.indexOf(":");
      if (i < 0) continue;
      const k = line.slice(0, i).trim();
      const val = line.slice(i + 1).trim();
      if (k.toLowerCase() === "status") status = Number(val.split(" ")[0]);
      else headers[k] = val;
    }
    res.writeHead(status, headers);
    res.end(sep < 0 ? out : out.subarray(sep + 4));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    root: o.root,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
