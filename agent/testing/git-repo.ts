/** Test support: a local git repository with one commit, the kind a task's `repo.url` can point at. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gitOutput } from "../work/git.ts";

export const GIT_IDENTITY = {
  GIT_AUTHOR_NAME: "t",
  GIT_AUTHOR_EMAIL: "t@e",
  GIT_COMMITTER_NAME: "t",
  GIT_COMMITTER_EMAIL: "t@e",
};

/** Create `dir` as a repository on branch main holding `files`, committed once. */
export async function initRepo(
  dir: string,
  files: Record<string, string>,
  env: Record<string, string> = { PATH: process.env.PATH ?? "" },
): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const ident = { ...env, ...GIT_IDENTITY };
  await gitOutput(dir, ident, ["init", "-q", "-b", "main"]);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  await gitOutput(dir, ident, ["add", "-A"]);
  await gitOutput(dir, ident, ["commit", "-qm", "init"]);
  return dir;
}
