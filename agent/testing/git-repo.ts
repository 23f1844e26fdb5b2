/**
 * Test support: a local git repository with one commit, the kind a task's `repo.url` can point at (or a
 * remote's bare repository is cloned from). `node:child_process` only, so Bun and Deno tests share it.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";

export const GIT_IDENTITY = {
  GIT_AUTHOR_NAME: "t",
  GIT_AUTHOR_EMAIL: "t@e",
  GIT_COMMITTER_NAME: "t",
  GIT_COMMITTER_EMAIL: "t@e",
};

/** `git <args>` in `cwd` with `env` (and the test identity); its output, or a throw with git's own words. */
export function git(cwd: string, args: string[], env: Record<string, string>): string {
  const r = spawnSync("git", args, { cwd, env: { ...env, ...GIT_IDENTITY }, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** Create `dir` as a repository on branch main holding `files`, committed once. */
export function initRepo(
  dir: string,
  files: Record<string, string>,
  env: Record<string, string> = { PATH: process.env.PATH ?? "" },
): string {
  mkdirSync(dir, { recursive: true });
  git(dir, ["init", "-q", "-b", "main"], env);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  git(dir, ["add", "-A"], env);
  git(dir, ["commit", "-qm", "init"], env);
  return dir;
}
