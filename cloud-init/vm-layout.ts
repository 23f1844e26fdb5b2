/**
 * Where things live on a VM (decided with the agent's configuration, docs/protocol.md). The renderer, the
 * agent unit and the tests that rehearse a boot in a temp dir all read these, so a path is named once.
 */
export const VM = {
  agentBinary: "/usr/local/bin/sam-agent",
  /** The download lands here and only moves to `agentBinary` after its checksum matched. */
  agentDownload: "/usr/local/lib/sam/sam-agent.download",
  agentDataDir: "/var/lib/sam-agent",
  configDir: "/etc/sam",
  agentEnv: "/etc/sam/agent.env",
  tokenFile: "/etc/sam/tokens",
  /** The node token as a curl header (0600), for the boot's live progress reports. */
  progressHeaders: "/etc/sam/boot-progress.headers",
  tlsDir: "/etc/sam/tls",
  tlsCert: "/etc/sam/tls/agent.crt",
  tlsKey: "/etc/sam/tls/agent.key",
  agentUnit: "/etc/systemd/system/sam-agent.service",
  journaldDropIn: "/etc/systemd/journald.conf.d/sam.conf",
  dockerDaemonJson: "/etc/docker/daemon.json",
  /**
   * Exists while the boot installs the devcontainer CLI (after the agent started): the agent offers
   * devcontainer workspaces meanwhile and a task waits for the CLI. Under /run, so a reboot clears it: a boot
   * script does not run again, and no agent may wait for an install that will never finish.
   */
  devcontainerCliPending: "/run/sam/devcontainer-cli.pending",
  /** Where boot state that must not survive a reboot lives (tmpfs). */
  runDir: "/run/sam",
  /** Output of each background job, so a slow or failed one can be read after the fact. */
  bootLogDir: "/var/log/sam-boot",
} as const;

/** The syslog tag of the boot markers the agent's boot timeline reads (docs/architecture.md § The agent). */
export const BOOT_TAG = "sam-boot";
