/**
 * What the user-data renderer takes, validated. Every value here ends up in a shell command, a systemd
 * `EnvironmentFile=` or a secrets file on the VM, so each schema admits only the characters its kind of value
 * needs: no quotes, whitespace, `$`, backticks or newlines can reach the boot script through an input.
 */
import * as v from "valibot";
import { Id } from "../shared/wire/common.ts";

/** An http(s) URL with no credentials and nothing a shell or an env file would read specially. */
function safeUrl(what: string, maxLength: number) {
  return v.pipe(
    v.string(),
    v.maxLength(maxLength, `${what} must be at most ${maxLength} characters`),
    v.regex(
      /^https?:\/\/[A-Za-z0-9.\-\[\]:]+(\/[A-Za-z0-9._~\-\/%+=,@]*)?$/,
      `${what} must be a plain http(s) URL (letters, digits and ._~-/%+=,@ only; no query, quotes or spaces)`,
    ),
    v.check((s) => {
      try {
        const u = new URL(s);
        return (u.protocol === "https:" || u.protocol === "http:") && u.username === "" && u.password === "";
      } catch {
        return false;
      }
    }, `${what} is not a valid http(s) URL`),
  );
}

/** A secret minted by the edge (`randomToken`): `prefix_` + base62. */
function token(prefix: string) {
  return v.pipe(v.string(), v.regex(new RegExp(`^${prefix}_[A-Za-z0-9]{16,128}$`), `must be a ${prefix}_ token`));
}

/**
 * A Docker image reference (`[registry[:port]/]path[:tag][@sha256:digest]`), lower-case path as Docker
 * requires. The grammar has no shell metacharacters, so a match is safe to put on a command line.
 */
export const ImageRef = v.pipe(
  v.string(),
  v.maxLength(255, "image reference must be at most 255 characters"),
  v.regex(
    /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]{1,5})?\/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/,
    "must be a Docker image reference like mcr.microsoft.com/devcontainers/base:ubuntu",
  ),
);

/** One OpenSSH public key line; the comment may not carry anything a YAML or shell reader would interpret. */
export const SshPublicKey = v.pipe(
  v.string(),
  v.maxLength(1024, "an SSH key must be at most 1024 characters"),
  v.regex(
    /^(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+\/]+={0,3}(?: [A-Za-z0-9@._+-]{1,100})?$/,
    "must be one OpenSSH public key line: type, base64 key and an optional comment",
  ),
);

export const MAX_SSH_KEYS = 10;

/** A git author or committer name as it may stand in the agent's env file. */
export const GitName = v.pipe(
  v.string(),
  v.regex(
    /^[^\s"'`$\\<>=][^\r\n"'`$\\<>]{0,99}$/,
    "a git name must be 1–100 characters without quotes, $, \\, <, > or line breaks",
  ),
);
/** A git author or committer e-mail as it may stand in the agent's env file. */
export const GitEmail = v.pipe(
  v.string(),
  v.regex(
    /^[^\s"'`$\\<>@]{1,100}@[^\s"'`$\\<>@]{1,100}$/,
    "a git e-mail must look like name@host, without quotes, $, \\, <, > or spaces",
  ),
);

export const Arch = v.picklist(["amd64", "arm64"], "arch must be amd64 or arm64");
export type Arch = v.InferOutput<typeof Arch>;

export const CloudInitInput = v.object({
  nodeId: Id,
  controlPlaneUrl: safeUrl("controlPlaneUrl", 512),
  nodeToken: token("samnode"),
  agentToken: token("samagent"),
  agentDownloadUrl: safeUrl("agentDownloadUrl", 1024),
  agentSha256: v.pipe(v.string(), v.regex(/^[a-f0-9]{64}$/, "agentSha256 must be 64 lower-case hex digits")),
  /** The devcontainer base image: the one image a boot pulls (a live feature: workspaces). */
  baseImage: ImageRef,
  arch: Arch,
  sshKeys: v.optional(v.pipe(v.array(SshPublicKey), v.maxLength(MAX_SSH_KEYS, `at most ${MAX_SSH_KEYS} SSH keys`)), []),
  agentPort: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535)), 8443),
  /** Where the Node.js tarball and SHASUMS256.txt come from: nodejs.org/dist or a mirror laid out like it. */
  nodejsMirror: v.optional(safeUrl("nodejsMirror", 512), "https://nodejs.org/dist"),
  /** The npm registry the devcontainer CLI is installed from. */
  npmRegistry: v.optional(safeUrl("npmRegistry", 512), "https://registry.npmjs.org"),
  /**
   * Who the commits SAM pushes for a task are by (docs/delivery.md): the agent's `SAM_GIT_AUTHOR_*` and
   * `SAM_GIT_COMMITTER_*`. A line of the agent's env file each, so no quote, `$`, backslash or line break.
   */
  gitIdentity: v.optional(v.object({
    authorName: v.optional(GitName),
    authorEmail: v.optional(GitEmail),
    committerName: v.optional(GitName),
    committerEmail: v.optional(GitEmail),
  })),
  /** Heartbeat period in seconds, from the edge's timeout table. */
  heartbeatSeconds: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(3600)), 30),
});
export type CloudInitInput = v.InferInput<typeof CloudInitInput>;
export type CloudInitConfig = v.InferOutput<typeof CloudInitInput>;
