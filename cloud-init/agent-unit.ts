/**
 * The agent's systemd unit. `Wants=` (not `Requires=`) docker: the slow-boot incident's kill chain was a Docker restart
 * propagating to the agent through `Requires=docker.service`. Configuration comes from a 0644 env file and
 * the secrets from a 0600 file the agent reads itself, so no token sits in `Environment=` (visible to
 * `systemctl show`).
 */
import type { CloudInitConfig } from "./inputs.ts";
import { VM } from "./vm-layout.ts";

export function agentUnit(agentBinary: string = VM.agentBinary): string {
  return [
    "[Unit]",
    "Description=SAM VM agent",
    "After=network-online.target docker.service",
    "Wants=network-online.target docker.service",
    "",
    "[Service]",
    "Type=simple",
    `EnvironmentFile=${VM.agentEnv}`,
    `ExecStart=${agentBinary}`,
    "Restart=always",
    "RestartSec=2",
    "TimeoutStopSec=30",
    "KillMode=mixed",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/** Non-secret agent configuration (docs/protocol.md § Agent configuration), one `KEY=value` a line. */
export function agentEnvFile(config: CloudInitConfig): string {
  const entries: Record<string, string> = {
    SAM_NODE_ID: config.nodeId,
    SAM_CONTROL_PLANE_URL: config.controlPlaneUrl,
    SAM_TOKEN_FILE: VM.tokenFile,
    SAM_AGENT_PORT: String(config.agentPort),
    SAM_AGENT_DATA_DIR: VM.agentDataDir,
    SAM_TLS_CERT: VM.tlsCert,
    SAM_TLS_KEY: VM.tlsKey,
    // A failed tls phase: start degraded and report it, rather than exit and be restarted forever.
    SAM_TLS_MISSING: "degrade",
    SAM_HEARTBEAT_INTERVAL: `${config.heartbeatSeconds}s`,
    SAM_BOOT_SOURCE: "journald",
    // The image the boot pre-pulls is the one workspaces use when a repo has no devcontainer.json.
    SAM_DEVCONTAINER_IMAGE: config.baseImage,
    // The boot installs the devcontainer CLI after the agent starts; until this file goes, a task waits for it.
    SAM_DEVCONTAINER_CLI_PENDING: VM.devcontainerCliPending,
  };
  // Who delivered commits are by, when the operator set it on the edge (else the agent's default identity).
  const git = config.gitIdentity ?? {};
  if (git.authorName) entries.SAM_GIT_AUTHOR_NAME = git.authorName;
  if (git.authorEmail) entries.SAM_GIT_AUTHOR_EMAIL = git.authorEmail;
  if (git.committerName) entries.SAM_GIT_COMMITTER_NAME = git.committerName;
  if (git.committerEmail) entries.SAM_GIT_COMMITTER_EMAIL = git.committerEmail;
  return Object.entries(entries).map(([k, v]) => `${k}=${v}\n`).join("");
}

/** The secrets file (0600), in the `KEY=VALUE` form the agent parses. */
export function tokenFile(config: CloudInitConfig): string {
  return `SAM_NODE_TOKEN=${config.nodeToken}\nSAM_AGENT_TOKEN=${config.agentToken}\n`;
}
