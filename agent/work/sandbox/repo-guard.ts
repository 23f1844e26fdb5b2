/**
 * After a task, the agent's own git (the diff, then delivery) works in a repository the task could write —
 * outside the sandbox, as the agent's user. Git runs commands that a repository's files name: hooks,
 * `core.fsmonitor`, filter and diff drivers and `include.path` in .git/config, and a `.git` that is a link or
 * a gitfile leads it elsewhere. So before git touches the repository again the agent puts back the
 * .git/config it cloned, empties the hooks, drops alternates and submodule repositories, refuses a `.git`
 * that is not a plain directory, and runs git with settings that switch the rest off.
 */
import { nodeFs, nodePath } from "../../runtime/lazy-node-modules.ts";

const SNAPSHOT = "git-config.cloned";

/** Right after the clone: keep the repository's config as the agent wrote it. */
export function snapshotGitConfig(dir: string, metaDir: string): void {
  nodeFs().copyFileSync(nodePath().join(dir, ".git", "config"), nodePath().join(metaDir, SNAPSHOT));
}

/** Put the repository's git dir back to what the agent can trust; throws when `.git` is not the clone's. */
export function restoreGitDir(dir: string, metaDir: string): void {
  const fs = nodeFs();
  const git = nodePath().join(dir, ".git");
  const snapshot = nodePath().join(metaDir, SNAPSHOT);
  if (!fs.existsSync(snapshot)) return; // no clone, no repository of ours
  let st;
  try {
    st = fs.lstatSync(git);
  } catch {
    throw new Error("the task removed the repository's .git");
  }
  if (!st.isDirectory()) throw new Error("the task replaced the repository's .git with a link or a file");
  fs.rmSync(nodePath().join(git, "config"), { force: true, recursive: true });
  fs.copyFileSync(snapshot, nodePath().join(git, "config"));
  fs.rmSync(nodePath().join(git, "hooks"), { recursive: true, force: true });
  fs.mkdirSync(nodePath().join(git, "hooks"), { mode: 0o755 });
  for (
    const rel of ["objects/info/alternates", "objects/info/http-alternates", "modules", "commondir", "info/attributes"]
  ) {
    fs.rmSync(nodePath().join(git, rel), { recursive: true, force: true });
  }
}

/** Settings given to every git the agent runs after a task (command-line level, so they beat any file). */
const HARDENING: [string, string][] = [
  ["core.hooksPath", "/dev/null"],
  ["core.fsmonitor", "false"],
  ["diff.ignoreSubmodules", "all"],
  ["submodule.recurse", "false"],
];

export function hardenedGitEnv(env: Record<string, string>): Record<string, string> {
  const out = { ...env };
  let n = Number(env.GIT_CONFIG_COUNT ?? 0) || 0;
  for (const [key, value] of HARDENING) {
    out[`GIT_CONFIG_KEY_${n}`] = key;
    out[`GIT_CONFIG_VALUE_${n}`] = value;
    n++;
  }
  out.GIT_CONFIG_COUNT = String(n);
  return out;
}
