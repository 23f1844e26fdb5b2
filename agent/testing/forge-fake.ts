/**
 * Test support: stand-ins for GitHub's and Gitea/Forgejo's pull-request API, answering with their published
 * shapes — success (201 with `number` and `html_url`), and their errors: 401 bad credentials, 404 unknown repo,
 * GitHub's 422 "A pull request already exists for owner:branch." and Gitea's 409 "pull request already exists
 * for these targets", and scripted answers (a secondary rate limit with `retry-after`, a 5xx) queued by a test.
 * `node:http` only, so Bun and Deno tests share it.
 */
import { Buffer } from "node:buffer";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";

export type ForgeKindFake = "github" | "gitea";

export type FakePull = {
  number: number;
  title: string;
  body: string;
  head: string;
  base: string;
  draft: boolean;
  html_url: string;
};

export type ScriptedAnswer = { status: number; headers?: Record<string, string>; json: unknown };

export type ForgeFake = {
  kind: ForgeKindFake;
  /** The API base to configure (GitHub: the root; Gitea: `…/api/v1`). */
  apiBase: string;
  pulls: FakePull[];
  requests: { method: string; path: string; auth: string | null; body: unknown }[];
  /** Answers to give, in order, before the normal behaviour resumes. */
  script: ScriptedAnswer[];
  close(): Promise<void>;
};

const GH_DOCS = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request";

/** GitHub's secondary rate limit answer: 403 with `retry-after`. */
export function githubSecondaryRateLimit(retryAfterSeconds: number): ScriptedAnswer {
  return {
    status: 403,
    headers: { "retry-after": String(retryAfterSeconds), "x-ratelimit-remaining": "4990" },
    json: {
      message: "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
      documentation_url:
        "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
      status: "403",
    },
  };
}

async function jsonOf(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export async function startForgeFake(
  o: { kind: ForgeKindFake; token: string; owner: string; repo: string; webBase?: string },
): Promise<ForgeFake> {
  const pulls: FakePull[] = [];
  const requests: ForgeFake["requests"] = [];
  const script: ScriptedAnswer[] = [];
  const prefix = o.kind === "github" ? "" : "/api/v1";
  const webBase = o.webBase ?? (o.kind === "github" ? "https://github.com" : "https://codeberg.org");
  const error = (status: number, message: string, extra: Record<string, unknown> = {}) =>
    o.kind === "github"
      ? { status, json: { message, documentation_url: GH_DOCS, status: String(status), ...extra } }
      : { status, json: { message, url: `${webBase}/api/swagger`, ...extra } };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const body = await jsonOf(req);
    const auth = req.headers.authorization ?? null;
    requests.push({ method: req.method ?? "GET", path: `${url.pathname}${url.search}`, auth, body });
    const send = (a: ScriptedAnswer) => {
      res.writeHead(a.status, { "Content-Type": "application/json; charset=utf-8", ...(a.headers ?? {}) });
      res.end(JSON.stringify(a.json));
    };
    const scripted = script.shift();
    if (scripted) return send(scripted);
    const okAuth = o.kind === "github"
      ? auth === `Bearer ${o.token}` || auth === `token ${o.token}`
      : auth === `token ${o.token}` || auth === `Bearer ${o.token}`;
    if (!okAuth) {
      return send(
        o.kind === "github" ? error(401, "Bad credentials") : error(401, "user does not exist [uid: 0, name: ]"),
      );
    }
    const m = new RegExp(`^${prefix}/repos/([^/]+)/([^/]+)/pulls$`).exec(url.pathname);
    if (!m || m[1] !== o.owner || m[2] !== o.repo) {
      return send(
        o.kind === "github" ? error(404, "Not Found") : {
          status: 404,
          json: {
            errors: ["repository does not exist"],
            message: "The target couldn't be found.",
            url: `${webBase}/api/swagger`,
          },
        },
      );
    }
    if (req.method === "GET") {
      const head = url.searchParams.get("head");
      const base = url.searchParams.get("base");
      const list = o.kind === "github"
        ? pulls.filter((p) => (!head || `${o.owner}:${p.head}` === head) && (!base || p.base === base))
        : pulls;
      return send({ status: 200, json: list.map(view) });
    }
    if (req.method !== "POST") return send(error(405, "Method Not Allowed"));
    const b = (body ?? {}) as Record<string, unknown>;
    if (typeof b.title !== "string" || typeof b.head !== "string" || typeof b.base !== "string") {
      return send(
        o.kind === "github"
          ? error(422, "Validation Failed", {
            errors: [{ resource: "PullRequest", field: "head", code: "missing_field" }],
          })
          : error(422, "[Title]: Required"),
      );
    }
    const existing = pulls.find((p) => p.head === b.head && p.base === b.base);
    if (existing) {
      return send(
        o.kind === "github"
          ? error(422, "Validation Failed", {
            errors: [{
              resource: "PullRequest",
              code: "custom",
              message: `A pull request already exists for ${o.owner}:${b.head}.`,
            }],
          })
          : error(
            409,
            `pull request already exists for these targets [id: ${existing.number}, issue_id: ${existing.number}, head_repo_id: 1, base_repo_id: 1, head_branch: ${b.head}, base_branch: ${b.base}]`,
          ),
      );
    }
    const number = pulls.length + 1;
    const pull: FakePull = {
      number,
      title: b.title,
      body: String(b.body ?? ""),
      head: b.head,
      base: b.base,
      draft: b.draft === true,
      html_url: `${webBase}/${o.owner}/${o.repo}/${o.kind === "github" ? "pull" : "pulls"}/${number}`,
    };
    pulls.push(pull);
    return send({ status: 201, json: view(pull) });
  });

  function view(p: FakePull) {
    return {
      id: 1000 + p.number,
      number: p.number,
      state: "open",
      title: p.title,
      body: p.body,
      draft: p.draft,
      html_url: p.html_url,
      head: { ref: p.head, label: `${o.owner}:${p.head}` },
      base: { ref: p.base, label: `${o.owner}:${p.base}` },
    };
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    kind: o.kind,
    apiBase: `http://127.0.0.1:${port}${prefix}`,
    pulls,
    requests,
    script,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
