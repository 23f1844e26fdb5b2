/**
 * The boot plan: the phases a VM runs, in the order a fast boot needs (docs/boot-plan.md), and
 * their rendering into `runcmd` shell. The plan is data so the order test, the execution test and the
 * critical-path estimate (`scripts/bench/boot-plan.ts`) all read the same thing the VM runs.
 *
 * Shape of each phase in the shell: a `PHASE START` marker, the commands chained with `&&` (so the first
 * failure stops the phase), then `PHASE END` or `PHASE FAILED`. A failure never stops the script: later
 * phases still run and the agent still starts to report it — except that an agent binary whose checksum does
 * not match is never installed, so nothing unverified runs.
 */
import type { CloudInitConfig } from "./inputs.ts";
import { BOOT_TAG, VM } from "./vm-layout.ts";

export type BootPhase = {
  name: string;
  /** Commands chained with `&&`; validated inputs only, single-quoted. */
  run: string[];
  /** Launched as a background job; a later phase `joins` it. */
  background?: boolean;
  /** Background phases this one waits for (inside its markers) before its own commands. */
  joins?: string[];
  /** Commands the script runs before it launches this (background) phase, outside its markers. */
  launch?: string[];
  /** Commands run when the phase fails (after the FAILED marker), e.g. removing a rejected download. */
  onFailure?: string[];
};

/** The designed phase order (docs/boot-plan.md); the renderer and the tests both check plans against it. */
export const PHASE_ORDER = [
  "docker-start",
  "firewall",
  "nodejs-install",
  "image-pull",
  "agent-download",
  "sandbox-install",
  "devcontainer-cli",
  "journald-config",
  "docker-restart",
  "tls",
  "agent-verify",
  "agent-start",
  "image-pull-wait",
  "devcontainer-cli-wait",
] as const;

/** The phases that run as background jobs: they start in the order above and overlap what follows them. */
export const BACKGROUND_PHASES: readonly string[] = [
  "nodejs-install",
  "image-pull",
  "agent-download",
  "sandbox-install",
  "devcontainer-cli",
];

/** Node.js for the devcontainer CLI (which needs Node ≥ 20): the official build, not Ubuntu's 18. */
export const NODE_VERSION = "22.11.0";
export const DEVCONTAINER_CLI_VERSION = "0.89.0";

/** POSIX single-quoting; inputs are already restricted, this is the second fence. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * Downloads retry every failure, not only the ones curl deems transient: a boot on a slow link (the lab's
 * emulated VM behind a busy host) saw a TLS handshake time out and a connection closed before the reply,
 * and either one failed the phase for good. Five retries with curl's doubling delay end within ≈ 30 s.
 */
const CURL = "curl -fsSL --retry 5 --retry-all-errors --connect-timeout 20";
const APT_INSTALL =
  "DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=120 install --no-install-recommends";

function firewallRules(agentPort: number): string[] {
  const common = [
    "-i lo -j ACCEPT",
    "-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    "-p tcp --dport 22 -j ACCEPT",
    `-p tcp --dport ${agentPort} -j ACCEPT`,
  ];
  const out: string[] = [];
  // IPv6 needs ICMPv6 for neighbour discovery, so each family keeps its ICMP.
  for (const [tool, icmp] of [["iptables", "icmp"], ["ip6tables", "ipv6-icmp"]] as const) {
    for (const rule of [...common, `-p ${icmp} -j ACCEPT`]) {
      // `-C` first: re-running the boot (or this phase) never stacks duplicate rules.
      out.push(`{ ${tool} -C INPUT ${rule} 2>/dev/null || ${tool} -A INPUT ${rule}; }`);
    }
    out.push(`${tool} -P INPUT DROP`);
  }
  return out;
}

function nodeArch(arch: CloudInitConfig["arch"]): string {
  return arch === "amd64" ? "x64" : "arm64";
}

export function unameMachine(arch: CloudInitConfig["arch"]): string {
  return arch === "amd64" ? "x86_64" : "aarch64";
}

export const NODEJS_MIRROR = "https://nodejs.org/dist";
export const NPM_REGISTRY = "https://registry.npmjs.org";

/** The Node.js tarball and its SHASUMS256.txt under a mirror laid out like nodejs.org/dist. */
export function nodeTarball(
  arch: CloudInitConfig["arch"],
  mirror: string = NODEJS_MIRROR,
): { url: string; sums: string; file: string } {
  // gzip, not xz: the .tar.gz is ~19 MB larger but decompresses ~4× faster, and the decompression is
  // CPU-bound on the critical path (the devcontainer CLI and then the agent wait for it).
  const file = `node-v${NODE_VERSION}-linux-${nodeArch(arch)}.tar.gz`;
  const base = `${mirror.replace(/\/+$/, "")}/v${NODE_VERSION}`;
  return { file, url: `${base}/${file}`, sums: `${base}/SHASUMS256.txt` };
}

/**
 * The agent's address: the source of the IPv4 default route (on Hetzner the public IPv4 on eth0), else of the
 * IPv6 default route (an IPv6-only server). No route at all fails the phase, visibly; the agent then starts
 * degraded and reports the failure instead of crash-looping on a missing certificate.
 */
const PUBLIC_ADDRESS = [
  `public_ip=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \\([0-9.]*\\).*/\\1/p')`,
  `{ test -n "$public_ip" || public_ip=$(ip -6 route get 2606:4700:4700::1111 2>/dev/null | sed -n 's/.* src \\([0-9a-f:]*\\).*/\\1/p'); }`,
  `test -n "$public_ip"`,
  `case "$public_ip" in *:*) url_host="[$public_ip]" ;; *) url_host=$public_ip ;; esac`,
];

/**
 * Docker read daemon.json when it started if cloud-init wrote it first (cloud-init.service runs before
 * network-online.target, docker.service after it): then a restart is pure cost, and it would also have to
 * wait for the image pull it would abort. Only a config newer than the running daemon is applied.
 */
const DOCKER_CONFIG_APPLY = [
  `docker_started=$(systemctl show -p ActiveEnterTimestamp --value docker.service 2>/dev/null || true)`,
  `docker_since=; { test -z "$docker_started" || docker_since=$(date -d "$docker_started" +%s 2>/dev/null) || true; }`,
  `if test -n "$docker_since" && test "$(stat -c %Y ${VM.dockerDaemonJson})" -lt "$docker_since"; then echo "daemon.json predates the running daemon: no restart"; ` +
  `else wait "$pid_image_pull"; pull_rc=$?; systemctl restart docker.service; fi`,
];

/** The phases for one node, in order. */
export function bootPlan(config: CloudInitConfig): BootPhase[] {
  const node = nodeTarball(config.arch, config.nodejsMirror);
  const nodeDir = "/usr/local/lib/nodejs";
  return [
    { name: "docker-start", run: ["systemctl start docker.service"] },
    { name: "firewall", run: firewallRules(config.agentPort) },
    {
      name: "nodejs-install",
      background: true,
      run: [
        `${CURL} -o /usr/local/lib/sam/node.tar.gz ${shellQuote(node.url)}`,
        `${CURL} -o /usr/local/lib/sam/node.sums ${shellQuote(node.sums)}`,
        // The sum comes from nodejs.org's own list; an empty match makes sha256sum fail, not pass.
        `node_sum=$(awk -v f=${shellQuote(node.file)} '$2 == f { print $1 }' /usr/local/lib/sam/node.sums)`,
        `echo "$node_sum  /usr/local/lib/sam/node.tar.gz" | sha256sum -c --status -`,
        `mkdir -p ${nodeDir}`,
        `tar -xzf /usr/local/lib/sam/node.tar.gz -C ${nodeDir} --strip-components=1 --no-same-owner`,
        `ln -sf ${nodeDir}/bin/node ${nodeDir}/bin/npm ${nodeDir}/bin/npx /usr/local/bin/`,
        // Installed: the 30 MB download has no further use on the node's disk.
        "rm -f /usr/local/lib/sam/node.tar.gz /usr/local/lib/sam/node.sums",
      ],
    },
    {
      name: "image-pull",
      background: true,
      run: [`docker pull ${shellQuote(config.baseImage)}`],
    },
    {
      name: "agent-download",
      background: true,
      run: [`${CURL} -o ${VM.agentDownload} ${shellQuote(config.agentDownloadUrl)}`],
    },
    {
      // The agent runs host-mode tasks in bubblewrap (docs/sandbox.md) and reports it at start, so the agent
      // starts after this install — but never fails to start because of it: a node without bubblewrap
      // still reports, and refuses host-mode tasks naming the package. Its own phase, so a failure shows.
      // The package lists are refreshed only when the image ships none.
      name: "sandbox-install",
      background: true,
      run: [`{ ${APT_INSTALL} bubblewrap || { apt-get -q update && ${APT_INSTALL} bubblewrap; }; }`],
    },
    {
      // Off the agent's critical path: the agent starts meanwhile and offers devcontainer workspaces while
      // the pending marker exists; a devcontainer task waits for the CLI (agent/work/workspace.ts). The
      // marker goes when the install ends either way, so no task waits for an install that failed.
      name: "devcontainer-cli",
      background: true,
      joins: ["nodejs-install"],
      launch: [`mkdir -p ${VM.runDir}`, `echo installing >${VM.devcontainerCliPending}`],
      // The system trust store (a mirror may use a private CA); no update-notifier call during the boot.
      run: [
        `NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt npm install -g --prefix /usr/local --no-audit --no-fund --no-update-notifier ` +
        `--registry ${shellQuote(config.npmRegistry)} @devcontainers/cli@${DEVCONTAINER_CLI_VERSION}`,
        `rm -f ${VM.devcontainerCliPending}`,
      ],
      onFailure: [`rm -f ${VM.devcontainerCliPending}`],
    },
    // The drop-in was written by write_files; a restart applies it (markers go through /dev/log, buffered).
    { name: "journald-config", run: ["systemctl restart systemd-journald.service"] },
    // Applies daemon.json (live-restore, log limits) when the daemon predates it; nothing of ours runs yet.
    { name: "docker-restart", run: DOCKER_CONFIG_APPLY },
    {
      // The agent's certificate names the address the edge calls (the source address of the default route:
      // on Hetzner the public IPv4 on eth0) and is no CA, so the edge can trust exactly it once the agent
      // reports it (docs/protocol.md § TLS); the agent reports that same address as its URL.
      name: "tls",
      run: [
        `mkdir -p ${VM.tlsDir}`,
        `chmod 0700 ${VM.tlsDir}`,
        ...PUBLIC_ADDRESS,
        `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 -subj ${
          shellQuote(`/CN=sam-node-${config.nodeId}`)
        } ` +
        `-addext "subjectAltName=DNS:sam-node-${config.nodeId},IP:$public_ip" -addext 'basicConstraints=critical,CA:FALSE' ` +
        `-addext 'keyUsage=critical,digitalSignature' -addext 'extendedKeyUsage=serverAuth' -keyout ${VM.tlsKey} -out ${VM.tlsCert}`,
        `chmod 0600 ${VM.tlsKey}`,
        `echo "SAM_AGENT_PUBLIC_URL=https://$url_host:${config.agentPort}" >>${VM.agentEnv}`,
      ],
    },
    {
      name: "agent-verify",
      joins: ["agent-download"],
      run: [
        `test "$(uname -m)" = ${shellQuote(unameMachine(config.arch))}`,
        `echo ${shellQuote(`${config.agentSha256}  ${VM.agentDownload}`)} | sha256sum -c --status -`,
        `install -m 0755 ${VM.agentDownload} ${VM.agentBinary}`,
        // Written back, then dropped from the page cache: a just-written file sits in large folios that a
        // process maps whole, so the agent started on it would hold ≈ 5 MiB more RSS for its life than one
        // that reads what it runs from disk (kernel 6.x with large folios; docs/agent.md § Memory). The VM
        // also stops caching the 106 MiB it will never read.
        `sync ${VM.agentBinary}`,
        `dd if=${VM.agentBinary} iflag=nocache count=0 status=none`,
        // Installed: the 106 MiB download has no further use on the node's disk.
        `rm -f ${VM.agentDownload}`,
      ],
      // A binary that does not match its checksum is deleted, never installed.
      onFailure: [`rm -f ${VM.agentDownload}`],
    },
    {
      name: "agent-start",
      run: [
        `test -x ${VM.agentBinary}`,
        // Waited for, not joined: its failure is its own phase's, not the agent's.
        `{ wait "$${pidVar("sandbox-install")}" || true; }`,
        // One manager reload, not two: `enable` finds the new unit file on disk and reloads by itself (an
        // explicit daemon-reload before it cost ≈ 5 s more under the lab's emulation).
        "systemctl enable --now --no-block sam-agent.service",
      ],
    },
    // The pull overlaps the agent's start; the script still ends with its outcome in the timeline. When
    // docker-restart already waited for it, its exit status is that wait's.
    {
      name: "image-pull-wait",
      run: [`if test -n "\${pull_rc:-}"; then test "$pull_rc" = 0; else wait "$pid_image_pull"; fi`],
    },
    // The script's end: the CLI install's outcome goes into the timeline like the pull's.
    { name: "devcontainer-cli-wait", joins: ["devcontainer-cli"], run: [] },
  ];
}

function pidVar(phase: string): string {
  return `pid_${phase.replace(/-/g, "_")}`;
}

/** Each marker goes to journald (the record) and, live and best effort, to the edge (`sam_progress`). */
export function marker(kind: "START" | "END" | "FAILED", phase: string): string {
  return `logger -t ${BOOT_TAG} 'PHASE ${kind}: ${phase}'; sam_progress ${kind} ${phase}`;
}

/**
 * `sam_progress KIND PHASE`: posts one marker to the edge's boot-progress callback so a boot that never
 * reaches the agent still shows where it is. In the background with short timeouts and every failure
 * ignored: it can neither block nor fail a phase. Retried (a slow boot on a busy network lost reports,
 * and a lost START or FAILED makes the boot timeout name the wrong phase); the edge drops duplicates. The node token goes in a header file (0600) read by curl,
 * never on a command line.
 */
function progressReporter(config: CloudInitConfig): string {
  const url = `${config.controlPlaneUrl.replace(/\/+$/, "")}/api/agent/boot-progress`;
  const body = `{"nodeId":"${config.nodeId}","kind":"%s","phase":"%s","at":%s}`;
  return [
    `(umask 077 && sed -n 's/^SAM_NODE_TOKEN=/Authorization: Bearer /p' ${VM.tokenFile} >${VM.progressHeaders}) || true`,
    `sam_progress() { curl -fsS -m 5 --connect-timeout 3 --retry 4 --retry-connrefused --retry-max-time 40 -o /dev/null -H @${VM.progressHeaders} -H 'Content-Type: application/json' ` +
    `--data-binary "$(printf '${body}' "$1" "$2" "$(date +%s%3N)")" ${shellQuote(url)} >/dev/null 2>&1 & }`,
  ].join("\n");
}

/**
 * Waiting for a background phase. The script waits for its own jobs; a background job cannot `wait` for a
 * sibling, so it polls the sibling's pid and then reads the exit status the sibling left in its `.rc` file.
 */
function joinCommand(phase: BootPhase, join: string): string {
  if (!phase.background) return `wait "$${pidVar(join)}"`;
  return `{ while kill -0 "$${pidVar(join)}" 2>/dev/null; do sleep 0.2; done; test "$(cat ${
    rcFile(join)
  } 2>/dev/null)" = 0; }`;
}

const rcFile = (phase: string) => `${VM.bootLogDir}/${phase}.rc`;

function renderPhase(phase: BootPhase): string {
  const joins = (phase.joins ?? []).map((j) => joinCommand(phase, j));
  const chain = [...joins, ...phase.run];
  const body = chain.length === 0 ? "true" : chain.join(" &&\n  ");
  const failure = [marker("FAILED", phase.name), ...(phase.onFailure ?? [])];
  // A background job exits non-zero on failure so the phase that joins it fails too, and leaves its status
  // for background phases that join it.
  if (phase.background) failure.push(`echo 1 >${rcFile(phase.name)}`, "exit 1");
  const ended = phase.background ? [marker("END", phase.name), `echo 0 >${rcFile(phase.name)}`] : [
    marker("END", phase.name),
  ];
  const lines = [
    marker("START", phase.name),
    `if ${body}; then`,
    ...ended.map((l) => `  ${l}`),
    "else",
    ...failure.map((l) => `  ${l}`),
    "fi",
  ];
  if (!phase.background) return lines.join("\n");
  return [
    ...(phase.launch ?? []),
    "(",
    ...lines.join("\n").split("\n").map((l) => `  ${l}`),
    `) >>${VM.bootLogDir}/${phase.name}.log 2>&1 &`,
    `${pidVar(phase.name)}=$!`,
  ].join("\n");
}

/** The preamble every phase relies on: a predictable umask, the directories the jobs write to, the reporter. */
function preamble(config: CloudInitConfig): string {
  return [
    "umask 022",
    `mkdir -p ${VM.bootLogDir} /usr/local/lib/sam /usr/local/bin ${VM.agentDataDir}`,
    progressReporter(config),
  ].join("\n");
}

/** `runcmd` entries: one string per phase, which cloud-init writes one after another into one `sh` script. */
export function renderRuncmd(config: CloudInitConfig, plan: BootPhase[] = bootPlan(config)): string[] {
  return [preamble(config), ...plan.map(renderPhase)];
}
