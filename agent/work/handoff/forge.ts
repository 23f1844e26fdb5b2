/**
 * Which forge a remote lives on and where its REST API is: GitHub (`api.github.com`, or `<host>/api/v3` for
 * GitHub Enterprise) or Gitea/Forgejo (`<host>/api/v1`), chosen from the remote URL's host unless the task
 * names the forge; the API base can always be given explicitly (self-hosted, or a stand-in in tests).
 */
import type { PullRequestRequest } from "../../../shared/wire/task.ts";

export type ForgeKind = "github" | "gitea";

export type ForgeTarget = {
  kind: ForgeKind;
  /** REST API root without a trailing slash; paths such as `/repos/{owner}/{repo}/pulls` go after it. */
  apiBase: string;
  owner: string;
  repo: string;
  /** The repository's web page, when the remote names a host. */
  webUrl: string | null;
};

type Remote = { scheme: "http" | "https"; host: string; owner: string; repo: string; webUrl: string };

/** `https://host/owner/repo(.git)`, `ssh://git@host/owner/repo.git`, `git@host:owner/repo.git` → its parts. */
export function parseRemote(url: string): Remote | null {
  let scheme: Remote["scheme"] = "https";
  let host: string;
  let path: string;
  const scp = /^[A-Za-z0-9._-]+@([A-Za-z0-9.-]+):(.+)$/.exec(url);
  if (scp) {
    host = scp[1]!;
    path = scp[2]!;
  } else {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return null;
    }
    if (!["http:", "https:", "ssh:", "git:"].includes(u.protocol) || !u.host) return null;
    if (u.protocol === "http:") scheme = "http";
    // A web page is on the http(s) port; an ssh port says nothing about it.
    host = u.protocol === "http:" || u.protocol === "https:" ? u.host : u.hostname;
    path = decodeURIComponent(u.pathname);
  }
  const parts = path.replace(/\.git\/?$/, "").split("/").filter(Boolean);
  if (parts.length < 2) return null;
  const repo = parts.at(-1)!;
  const owner = parts.at(-2)!;
  const prefix = parts.slice(0, -2).map(encodeURIComponent).join("/");
  const webUrl = `${scheme}://${host}${prefix ? `/${prefix}` : ""}/${encodeURIComponent(owner)}/${
    encodeURIComponent(repo)
  }`;
  return { scheme, host, owner, repo, webUrl };
}

/** The forge a well-known host runs; null when the host does not say. */
export function forgeOfHost(host: string): ForgeKind | null {
  const h = host.toLowerCase().replace(/:\d+$/, "");
  if (h === "github.com" || h === "www.github.com") return "github";
  if (h === "codeberg.org" || /^(gitea|forgejo)\./.test(h) || /\.(gitea|forgejo)\./.test(h)) return "gitea";
  return null;
}

/** Where to open a pull request for `repoUrl`, or why SAM cannot tell. */
export function forgeTarget(
  repoUrl: string,
  pr: Pick<PullRequestRequest, "forge" | "apiBase"> = {},
): ForgeTarget | { error: string } {
  const remote = parseRemote(repoUrl);
  if (!remote) {
    return { error: "the repository URL names no forge host and owner/repo (a local path cannot take a pull request)" };
  }
  const kind: ForgeKind | null = pr.forge ? (pr.forge === "github" ? "github" : "gitea") : forgeOfHost(remote.host);
  if (!kind) {
    return {
      error:
        `cannot tell which forge ${remote.host} runs; set repo.push.pullRequest.forge (github, gitea or forgejo) and, if needed, apiBase`,
    };
  }
  const origin = `${remote.scheme}://${remote.host}`;
  const fallback = kind === "github"
    ? (forgeOfHost(remote.host) === "github" ? "https://api.github.com" : `${origin}/api/v3`)
    : `${origin}/api/v1`;
  return {
    kind,
    apiBase: (pr.apiBase ?? fallback).replace(/\/+$/, ""),
    owner: remote.owner,
    repo: remote.repo,
    webUrl: remote.webUrl,
  };
}

/** The web page of a branch: GitHub `…/tree/<branch>`, Gitea/Forgejo `…/src/branch/<branch>`. */
export function branchWebUrl(target: ForgeTarget, branch: string): string | undefined {
  if (!target.webUrl) return undefined;
  const ref = branch.split("/").map(encodeURIComponent).join("/");
  return target.kind === "github" ? `${target.webUrl}/tree/${ref}` : `${target.webUrl}/src/branch/${ref}`;
}
