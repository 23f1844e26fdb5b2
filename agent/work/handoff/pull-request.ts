/**
 * Opening the pull request through the forge's REST API: GitHub `POST /repos/{owner}/{repo}/pulls`, Gitea and
 * Forgejo the same path under `/api/v1`. A pull request that already exists for the same head and base (GitHub
 * 422 "A pull request already exists", Gitea 409) is looked up and reported by its URL instead; 5xx and rate
 * limits are retried within the task's deadline; 401/403/404 end the attempt with the forge's own message.
 */
import * as v from "valibot";
import type { ForgeTarget } from "./forge.ts";
import { type Attempt, transientWait, withRetries } from "./retry.ts";

export type PullRequestInput = {
  target: ForgeTarget;
  /** The API token (the password half of the task's credential). */
  token: string;
  head: string;
  base: string;
  title: string;
  body: string;
  draft: boolean;
  deadlineAt: number;
  backoffMs: number;
  requestTimeoutMs: number;
  signal?: AbortSignal;
  log: (message: string) => void;
};

export type PullRequestOutcome =
  | { ok: true; number: number; url: string; existing: boolean }
  | { ok: false; reason: string; auth: boolean; timedOut: boolean };

const Pull = v.object({
  number: v.pipe(v.number(), v.integer(), v.minValue(0)),
  html_url: v.string(),
  head: v.optional(v.object({ ref: v.string() })),
  base: v.optional(v.object({ ref: v.string() })),
});
const ForgeError = v.object({
  message: v.optional(v.string()),
  errors: v.optional(v.array(v.unknown())),
});

type Answer = { status: number; json: unknown; res: Response };

export async function openPullRequest(i: PullRequestInput): Promise<PullRequestOutcome> {
  const { target } = i;
  const repoPath = `/repos/${encodeURIComponent(target.owner)}/${encodeURIComponent(target.repo)}`;
  const headers: Record<string, string> = target.kind === "github"
    ? {
      Authorization: `Bearer ${i.token}`,
      Accept: "application/vnd.github+json",
      "X-GitHub-Api-Version": "2022-11-28",
    }
    : { Authorization: `token ${i.token}`, Accept: "application/json" };
  headers["User-Agent"] = "sam-agent";
  const redact = (text: string) => (i.token ? text.split(i.token).join("***") : text);
  const where = `${target.owner}/${target.repo} at ${target.apiBase}`;

  /** One request, retried while the answer is transient. */
  const call = (method: "GET" | "POST", path: string, body?: unknown) =>
    withRetries<Answer>({
      deadlineAt: i.deadlineAt,
      backoffMs: i.backoffMs,
      signal: i.signal,
      onRetry: (why, wait) => i.log(`delivery: ${why}; retrying in ${Math.ceil(wait / 1000)} s`),
    }, async (): Promise<Attempt<Answer>> => {
      const left = Math.max(1, Math.min(i.requestTimeoutMs, i.deadlineAt - Date.now()));
      const signals = [AbortSignal.timeout(left), ...(i.signal ? [i.signal] : [])];
      let res: Response;
      try {
        res = await fetch(`${target.apiBase}${path}`, {
          method,
          headers: body === undefined ? headers : { ...headers, "Content-Type": "application/json" },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.any(signals),
        });
      } catch (err) {
        if (i.signal?.aborted) return { ok: false, transient: false, reason: "cancelled" };
        return {
          ok: false,
          transient: true,
          reason: `the forge API at ${target.apiBase} did not answer (${redact((err as Error).message)})`,
        };
      }
      const text = await res.text();
      let json: unknown = null;
      try {
        json = text ? JSON.parse(text) : null;
      } catch {
        json = null;
      }
      const wait = transientWait(res, Date.now());
      if (wait) {
        return {
          ok: false,
          transient: true,
          reason: `the forge answered ${res.status}${messageOf(json, redact)}`,
          waitMs: wait.waitMs,
        };
      }
      return { ok: true, value: { status: res.status, json, res } };
    });

  const failed = (reason: string, o: { auth?: boolean; timedOut?: boolean } = {}): PullRequestOutcome => ({
    ok: false,
    reason,
    auth: o.auth ?? false,
    timedOut: o.timedOut ?? false,
  });

  // Gitea has no draft flag in its API; a "WIP:" title is its way of marking work in progress.
  const title = i.draft && target.kind === "gitea" ? `WIP: ${i.title}` : i.title;
  const payload = target.kind === "github"
    ? { title, head: i.head, base: i.base, body: i.body, draft: i.draft }
    : { title, head: i.head, base: i.base, body: i.body };
  const created = await call("POST", `${repoPath}/pulls`, payload);
  if (!created.ok) return failed(created.reason, { timedOut: created.timedOut });
  const { status, json } = created.value;
  if (status === 201 || status === 200) {
    const pr = v.safeParse(Pull, json);
    if (!pr.success) return failed(`the forge answered ${status} without a pull request number and html_url`);
    return { ok: true, number: pr.output.number, url: pr.output.html_url, existing: false };
  }
  if (alreadyExists(status, json)) return findExisting();
  const msg = messageOf(json, redact);
  if (status === 401) return failed(`the forge refused the credential (401${msg})`, { auth: true });
  if (status === 403) {
    return failed(`the credential may not open pull requests on ${where} (403${msg})`, { auth: true });
  }
  if (status === 404) return failed(`no repository ${where}, or the credential cannot see it (404${msg})`);
  return failed(`the forge refused the pull request (${status}${msg})`);

  async function findExisting(): Promise<PullRequestOutcome> {
    const query = target.kind === "github"
      ? `?state=open&head=${encodeURIComponent(`${target.owner}:${i.head}`)}&base=${encodeURIComponent(i.base)}`
      : "?state=open&limit=50";
    const listed = await call("GET", `${repoPath}/pulls${query}`);
    if (!listed.ok) {
      return failed(`a pull request from ${i.head} already exists, but listing it failed: ${listed.reason}`, {
        timedOut: listed.timedOut,
      });
    }
    const pulls = v.safeParse(v.array(Pull), listed.value.json);
    const match = pulls.success
      ? pulls.output.find((p) => (p.head?.ref ?? i.head) === i.head && (p.base?.ref ?? i.base) === i.base)
      : undefined;
    if (!match) {
      return failed(
        `the forge says a pull request from ${i.head} into ${i.base} already exists, but SAM could not find it (${listed.value.status})`,
      );
    }
    return { ok: true, number: match.number, url: match.html_url, existing: true };
  }
}

/** GitHub: 422 whose errors say "A pull request already exists"; Gitea/Forgejo: 409 "pull request already exists". */
function alreadyExists(status: number, json: unknown): boolean {
  if (status !== 422 && status !== 409) return false;
  return /pull request already exists/i.test(JSON.stringify(json ?? ""));
}

function messageOf(json: unknown, redact: (s: string) => string): string {
  const e = v.safeParse(ForgeError, json);
  if (!e.success || !e.output.message) return "";
  const details = (e.output.errors ?? [])
    .map((x) => (typeof x === "object" && x && "message" in x ? String((x as { message: unknown }).message) : ""))
    .filter(Boolean);
  return `: ${redact([e.output.message, ...details].join("; ")).slice(0, 500)}`;
}
