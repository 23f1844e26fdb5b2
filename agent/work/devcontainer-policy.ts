/**
 * What a repository's own devcontainer.json may not ask for. Docker's isolation is the devcontainer mode's
 * sandbox, and these properties step outside it: `initializeCommand` runs on the host as the agent's user;
 * `mounts`, `workspaceMount`, `runArgs` (`-v /:/host`, `--privileged`), `privileged`, `capAdd`, `securityOpt`
 * and a compose file can give the container the node's tokens or the host itself. A repo that asks for one
 * is refused before `devcontainer up` runs anything. (Features that make a container privileged, such as
 * docker-in-docker, are not recognised here: docs/sandbox.md says so.)
 */
const HOST_REACHING = [
  "initializeCommand",
  "mounts",
  "workspaceMount",
  "runArgs",
  "privileged",
  "capAdd",
  "securityOpt",
  "dockerComposeFile",
] as const;

/**
 * The host-reaching properties a devcontainer.json (JSON with comments) sets. Matched as `"name":` anywhere
 * in the text, nested or not: a false positive refuses a repo, a parser's blind spot would let one through.
 */
export function hostReachingProperties(text: string): string[] {
  return HOST_REACHING.filter((name) => new RegExp(`"${name}"\\s*:`).test(text));
}

export function devcontainerRefusal(text: string, file: string): string | null {
  const found = hostReachingProperties(text);
  if (found.length === 0) return null;
  return `the repository's ${file} sets ${found.join(", ")}, which would reach outside the container onto the node; ` +
    "SAM refuses it (remove them, or let the task use the configured base image)";
}
