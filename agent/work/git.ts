/**
 * Git in a workspace: the shallow clone (with the task's credential handed to git through an askpass helper
 * and the environment — never on a command line, in a URL on disk, or in a log) and, when the work is done,
 * the change as `git diff --stat` plus a size-capped patch against the commit that was cloned.
 */
import { nodeFs, nodePath } from "../runtime/lazy-node-modules.ts";
import { type LineSink, runInGroup } from "./process-group.ts";

/** Print the username or the password git asks for; the values come from the clone's environment only. */
const ASKPASS = `#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "$SAM_GIT_USERNAME" ;;
  *) printf '%s\\n' "$SAM_GIT_PASSWORD" ;;
esac
`;

/** `user:secret`, or a bare token (GitHub/GitLab style: any username, the token as password). */
export function splitCredential(credential: string): { username: string; password: string } {
  const i = credential.indexOf(":");
  return i > 0
    ? { username: credential.slice(0, i), password: credential.slice(i + 1) }
    : { username: "x-access-token", password: credential };
}

/** `https://user:pw@host/x` → `https://***@host/x`, so a URL that carries its own secret is never logged. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, "$1***@");
}

/** An absolute path becomes a file:// URL so `--depth` is honoured (git ignores it for plain local paths). */
export function cloneSource(url: string): string {
  return url.startsWith("/") ? `file://${url}` : url;
}

export type CloneInput = {
  url: string;
  branch?: string;
  credential?: string;
  /** Where the working tree goes (must not exist or be empty). */
  dir: string;
  /** A private directory outside the working tree for the askpass helper. */
  metaDir: string;
  env: Record<string, string>;
  onLine: LineSink;
  signal?: AbortSignal;
  timeoutMs?: number;
};

/**
 * The environment that lets git (clone, ls-remote, push) authenticate with `credential`: an askpass helper in
 * `metaDir` that answers from two variables. Only SAM's own git processes get it.
 */
export function askpassEnv(metaDir: string, credential: string | undefined): Record<string, string> {
  const askpass = nodePath().join(metaDir, "askpass.sh");
  nodeFs().writeFileSync(askpass, ASKPASS, { mode: 0o700 });
  nodeFs().chmodSync(askpass, 0o700);
  const cred = credential ? splitCredential(credential) : { username: "", password: "" };
  return {
    GIT_ASKPASS: askpass,
    GIT_TERMINAL_PROMPT: "0",
    SAM_GIT_USERNAME: cred.username,
    SAM_GIT_PASSWORD: cred.password,
    // ssh must not stop at a host-key or passphrase prompt on a node nobody watches.
    GIT_SSH_COMMAND: "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
  };
}

export async function cloneRepo(input: CloneInput): Promise<{ ok: true; head: string } | { ok: false; error: string }> {
  const env = { ...input.env, ...askpassEnv(input.metaDir, input.credential) };
  const cred = { password: env.SAM_GIT_PASSWORD };
  const argv = ["git", "-c", "credential.helper=", "clone", "--depth", "1", "--no-tags"];
  if (input.branch) argv.push("--branch", input.branch, "--single-branch");
  argv.push("--", cloneSource(input.url), input.dir);
  const tail: string[] = [];
  const secret = cred.password;
  const run = await runInGroup(argv, {
    cwd: input.metaDir,
    env,
    signal: input.signal,
    timeoutMs: input.timeoutMs,
    onLine: (stream, line) => {
      // git echoes URLs, never the askpass answers; still, a secret must not reach a log even by accident.
      const safe = redactUrl(secret ? line.split(secret).join("***") : line);
      tail.push(safe);
      if (tail.length > 5) tail.shift();
      input.onLine(stream, safe);
    },
  });
  if (run.exitCode !== 0) {
    const why = run.timedOut
      ? "timed out"
      : run.aborted
      ? "cancelled"
      : tail.filter(Boolean).pop() ?? `exit ${run.exitCode}`;
    return { ok: false, error: `git clone of ${redactUrl(input.url)} failed: ${why}` };
  }
  const head = await gitOutput(input.dir, input.env, ["rev-parse", "HEAD"]);
  return { ok: true, head: head.trim() };
}

/** Run git and return stdout; throws with git's last stderr line on failure. */
export async function gitOutput(dir: string, env: Record<string, string>, args: string[]): Promise<string> {
  const proc = Bun.spawn(["git", "-c", "core.quotepath=off", ...args], {
    cwd: dir,
    env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new Error(`git ${args[0]}: ${err.trim().split("\n").pop() ?? `exit ${code}`}`);
  return out;
}

export type RepoChange = { diffStat: string; patch: string; patchTruncated: boolean };

/** Everything the task changed since `base` — new files included, commits the agent made included. */
export async function collectChange(
  dir: string,
  env: Record<string, string>,
  base: string,
  patchMaxBytes: number,
): Promise<RepoChange> {
  await gitOutput(dir, env, ["add", "-A"]);
  const diffStat = (await gitOutput(dir, env, ["diff", "--cached", "--stat", base])).trimEnd();
  const full = await gitOutput(dir, env, ["diff", "--cached", "--binary", base]);
  const bytes = Buffer.from(full, "utf8");
  if (bytes.length <= patchMaxBytes) return { diffStat, patch: full, patchTruncated: false };
  // Cut at a line boundary so the part that is there is readable.
  const cut = bytes.subarray(0, patchMaxBytes).toString("utf8");
  const nl = cut.lastIndexOf("\n");
  return { diffStat, patch: nl > 0 ? cut.slice(0, nl + 1) : cut, patchTruncated: true };
}
