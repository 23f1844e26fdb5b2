/**
 * The commit and the push. The commit is built from the workspace's index with `commit-tree` (no hooks run,
 * one commit on top of the cloned commit, whatever commits the task made itself), by the configured author and
 * committer, with the task id in a `SAM-Task-Id` trailer.
 *
 * The push runs in a bare repository SAM makes in the task's private meta dir and that borrows the workspace's
 * objects (git alternates). The workspace's own `.git/config` and hooks were writable by the task, so nothing
 * that holds the credential ever runs there: no `insteadOf`, hook or helper the task planted can redirect or
 * read it. The credential reaches git only through the askpass helper and its environment.
 *
 * The push only creates: `--force-with-lease=<ref>:` (empty) refuses when the branch exists, so SAM never
 * overwrites a branch, and the remote's default branch is refused before anything is sent.
 */
import { nodeFs, nodePath } from "../../runtime/lazy-node-modules.ts";
import { askpassEnv, cloneSource, gitOutput, redactUrl } from "../git.ts";
import { runInGroup } from "../process-group.ts";
import type { TaskDelivery } from "../../../shared/wire/task.ts";

/** Config a task could have set in its workspace that must not steer SAM's own git there. */
const SAFE_WORKSPACE = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"];

export type Identity = { name: string; email: string };

export type CommitInput = {
  dir: string;
  metaDir: string;
  env: Record<string, string>;
  /** The commit that was cloned: the new commit's only parent. */
  base: string;
  message: string;
  taskId: string;
  author: Identity;
  committer: Identity;
};

/** The commit holding the task's change, or null when the tree equals the cloned commit's (nothing to push). */
export async function commitWork(i: CommitInput): Promise<string | null> {
  const git = (args: string[], env: Record<string, string> = i.env) =>
    gitOutput(i.dir, env, [...SAFE_WORKSPACE, ...args]);
  await git(["add", "-A"]);
  const tree = (await git(["write-tree"])).trim();
  const baseTree = (await git(["rev-parse", `${i.base}^{tree}`])).trim();
  if (tree === baseTree) return null;
  const file = nodePath().join(i.metaDir, "commit-message.txt");
  nodeFs().writeFileSync(file, `${i.message.trimEnd()}\n\nSAM-Task-Id: ${i.taskId}\n`);
  const env = {
    ...i.env,
    GIT_AUTHOR_NAME: i.author.name,
    GIT_AUTHOR_EMAIL: i.author.email,
    GIT_COMMITTER_NAME: i.committer.name,
    GIT_COMMITTER_EMAIL: i.committer.email,
  };
  return (await git(["commit-tree", tree, "-p", i.base, "-F", file], env)).trim();
}

export type PushInput = {
  /** The workspace whose objects the push borrows. */
  dir: string;
  metaDir: string;
  url: string;
  credential?: string;
  branch: string;
  commit: string;
  env: Record<string, string>;
  signal?: AbortSignal;
  timeoutMs?: number;
  onLine: (line: string) => void;
};

export type RemoteState = { defaultBranch: string | null; branchAt: string | null };

export type PushAttempt =
  | { ok: true; alreadyThere: boolean; defaultBranch: string | null }
  | { ok: false; transient: boolean; code: NonNullable<TaskDelivery["code"]>; reason: string };

/** A bare repository in the meta dir that sees the workspace's objects and nothing of its config. */
export async function prepareSender(dir: string, metaDir: string, env: Record<string, string>): Promise<string> {
  const sender = nodePath().join(metaDir, "push.git");
  nodeFs().rmSync(sender, { recursive: true, force: true });
  const gitDir = nodePath().join(dir, ".git");
  if (!nodeFs().statSync(gitDir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error("the workspace's .git is not a directory any more; the work cannot be pushed from it");
  }
  await gitOutput(metaDir, env, ["init", "--bare", "-q", sender]);
  nodeFs().writeFileSync(
    nodePath().join(sender, "objects", "info", "alternates"),
    `${nodePath().join(gitDir, "objects")}\n`,
  );
  // The clone is shallow: the sender must know where history stops, or it walks into commits it lacks.
  const shallow = nodePath().join(gitDir, "shallow");
  if (nodeFs().existsSync(shallow)) nodeFs().copyFileSync(shallow, nodePath().join(sender, "shallow"));
  return sender;
}

/** Ask the remote where its HEAD points and whether `branch` exists; then push `commit` as a new branch. */
export async function pushBranch(i: PushInput & { sender: string }): Promise<PushAttempt> {
  const env = { ...i.env, ...askpassEnv(i.metaDir, i.credential) };
  const secret = env.SAM_GIT_PASSWORD;
  const safe = (line: string) => redactUrl(secret ? line.split(secret).join("***") : line);
  const remote = cloneSource(i.url);
  const ref = `refs/heads/${i.branch}`;
  const run = async (args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const r = await runInGroup(["git", "-c", "credential.helper=", "-c", "core.hooksPath=/dev/null", ...args], {
      cwd: i.sender,
      env,
      signal: i.signal,
      timeoutMs: i.timeoutMs,
      onLine: (stream, line) => (stream === "stdout" ? out : err).push(safe(line)),
    });
    return { ...r, out, err };
  };

  const listed = await run(["ls-remote", "--symref", "--", remote, "HEAD", ref]);
  if (listed.exitCode !== 0) return classify(listed, "could not reach the remote");
  const state = parseLsRemote(listed.out, ref);
  if (state.defaultBranch === i.branch) {
    return {
      ok: false,
      transient: false,
      code: "default_branch",
      reason: `${i.branch} is the remote's default branch; SAM pushes only to a new branch`,
    };
  }
  if (state.branchAt === i.commit) return { ok: true, alreadyThere: true, defaultBranch: state.defaultBranch };
  if (state.branchAt) {
    return {
      ok: false,
      transient: false,
      code: "branch_exists",
      reason: `branch ${i.branch} already exists on the remote (at ${
        state.branchAt.slice(0, 12)
      }); SAM never overwrites a branch it did not create`,
    };
  }
  i.onLine(`delivery: pushing ${i.commit.slice(0, 12)} to ${redactUrl(i.url)} as ${i.branch}`);
  const pushed = await run([
    "push",
    "--porcelain",
    "--no-verify",
    `--force-with-lease=${ref}:`,
    "--",
    remote,
    `${i.commit}:${ref}`,
  ]);
  for (const line of pushed.err) if (line.trim()) i.onLine(`delivery: ${line}`);
  if (pushed.exitCode !== 0) return classify(pushed, "the push failed");
  return { ok: true, alreadyThere: false, defaultBranch: state.defaultBranch };
}

export function parseLsRemote(lines: string[], ref: string): RemoteState {
  let defaultBranch: string | null = null;
  let branchAt: string | null = null;
  for (const line of lines) {
    const sym = /^ref: refs\/heads\/(\S+)\tHEAD$/.exec(line);
    if (sym) defaultBranch = sym[1]!;
    const [sha, name] = line.split("\t");
    if (name === ref && sha && /^[0-9a-f]{40,64}$/.test(sha)) branchAt = sha;
  }
  return { defaultBranch, branchAt };
}

/** Turn git's complaint into a reason a user can act on, and say whether trying again could help. */
function classify(
  r: { exitCode: number | null; timedOut: boolean; aborted: boolean; out: string[]; err: string[] },
  what: string,
): PushAttempt {
  if (r.aborted) return { ok: false, transient: false, code: "cancelled", reason: `${what}: cancelled` };
  const text = [...r.err, ...r.out].join("\n");
  const last = [...r.err, ...r.out].filter((l) => l.trim()).pop() ?? `exit ${r.exitCode}`;
  const fail = (
    code: NonNullable<TaskDelivery["code"]>,
    transient: boolean,
    reason = `${what}: ${last}`,
  ): PushAttempt => ({ ok: false, transient, code, reason });
  if (r.timedOut) return fail("push_failed", true, `${what}: timed out`);
  if (
    /Authentication failed|could not read (Username|Password)|returned error: 40[13]|Permission denied|access denied|invalid credentials|terminal prompts disabled/i
      .test(text)
  ) {
    return fail("auth", false, `${what}: the remote refused the credential (${last})`);
  }
  if (/protected branch|GH006|protected ref|pre-receive hook declined/i.test(text)) {
    return fail("protected_branch", false);
  }
  if (/stale info|already exists|non-fast-forward|fetch first/i.test(text)) return fail("branch_exists", false);
  if (
    /returned error: 5\d\d|returned error: 429|RPC failed|Could not resolve host|Connection refused|Connection reset|timed out|early EOF|hung up unexpectedly|Failed to connect/i
      .test(text)
  ) {
    return fail("push_failed", true);
  }
  return fail("push_failed", false);
}
