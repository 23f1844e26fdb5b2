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
  "devcontainer-cli",
  "journald-config",
  "image-pull-wait",
  "docker-restart",
  "tls",
  "agent-verify",
  "agent-start",
] as const;

/** Node.js for the devcontainer CLI (which needs Node ≥ 20): the official build, not Ubuntu's 18. */
export const NODE_VERSION = "22.11.0";
export const DEVCONTAINER_CLI_VERSION = "0.89.0";

/** POSIX single-quoting; inputs are already restricted, this is the second fence. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

const CURL = "curl -fsSL --retry 5 --retry-connrefused --connect-timeout 10";

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

export function nodeTarball(arch: CloudInitConfig["arch"]): { url: string; sums: string; file: string } {
  const file = `node-v${NODE_VERSION}-linux-${nodeArch(arch)}.tar.xz`;
  return {
    file,
    url: `https://nodejs.org/dist/v${NODE_VERSION}/${file}`,
    sums: `https://nodejs.org/dist/v${NODE_VERSION}/SHASUMS256.txt`,
  };
}

/** The phases for one node, in order. */
export function bootPlan(config: CloudInitConfig): BootPhase[] {
  const node = nodeTarball(config.arch);
  const nodeDir = "/usr/local/lib/nodejs";
  return [
    { name: "docker-start", run: ["systemctl start docker.service"] },
    { name: "firewall", run: firewallRules(config.agentPort) },
    {
      name: "nodejs-install",
      background: true,
      run: [
        `${CURL} -o /usr/local/lib/sam/node.tar.xz ${shellQuote(node.url)}`,
        `${CURL} -o /usr/local/lib/sam/node.sums ${shellQuote(node.sums)}`,
        // The sum comes from nodejs.org's own list; an empty match makes sha256sum fail, not pass.
        `node_sum=$(awk -v f=${shellQuote(node.file)} '$2 == f { print $1 }' /usr/local/lib/sam/node.sums)`,
        `echo "$node_sum  /usr/local/lib/sam/node.tar.xz" | sha256sum -c --status -`,
        `mkdir -p ${nodeDir}`,
        `tar -xJf /usr/local/lib/sam/node.tar.xz -C ${nodeDir} --strip-components=1 --no-same-owner`,
        `ln -sf ${nodeDir}/bin/node ${nodeDir}/bin/npm ${nodeDir}/bin/npx /usr/local/bin/`,
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
      name: "devcontainer-cli",
      joins: ["nodejs-install"],
      run: [`npm install -g --prefix /usr/local --no-audit --no-fund @devcontainers/cli@${DEVCONTAINER_CLI_VERSION}`],
    },
    // The drop-in was written by write_files; a restart applies it (markers go through /dev/log, buffered).
    { name: "journald-config", run: ["systemctl restart systemd-journald.service"] },
    // The restart below would abort a running pull: wait for it first.
    { name: "image-pull-wait", joins: ["image-pull"], run: [] },
    // Applies daemon.json (live-restore, log limits); nothing started by us runs yet, so nothing is killed.
    { name: "docker-restart", run: ["systemctl restart docker.service"] },
    {
      // The agent's certificate names the address the edge calls (the source address of the default route:
      // on Hetzner the public IPv4 on eth0) and is no CA, so the edge can trust exactly it once the agent
      // reports it (docs/protocol.md § TLS); the agent reports that same address as its URL.
      name: "tls",
      run: [
        `mkdir -p ${VM.tlsDir}`,
        `chmod 0700 ${VM.tlsDir}`,
        `public_ip=$(ip -4 route get 1.1.1.1 | sed -n 's/.* src \\([0-9.]*\\).*/\\1/p')`,
        `test -n "$public_ip"`,
        `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 -subj ${shellQuote(`/CN=sam-node-${config.nodeId}`)} ` +
          `-addext "subjectAltName=DNS:sam-node-${config.nodeId},IP:$public_ip" -addext 'basicConstraints=critical,CA:FALSE' ` +
          `-addext 'keyUsage=critical,digitalSignature' -addext 'extendedKeyUsage=serverAuth' -keyout ${VM.tlsKey} -out ${VM.tlsCert}`,
        `chmod 0600 ${VM.tlsKey}`,
        `echo "SAM_AGENT_PUBLIC_URL=https://$public_ip:${config.agentPort}" >>${VM.agentEnv}`,
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
        `sync ${VM.agentBinary} ${VM.agentDownload}`,
        `dd if=${VM.agentBinary} iflag=nocache count=0 status=none`,
        `dd if=${VM.agentDownload} iflag=nocache count=0 status=none`,
      ],
      // A binary that does not match its checksum is deleted, never installed.
      onFailure: [`rm -f ${VM.agentDownload}`],
    },
    {
      name: "agent-start",
      run: [
        `test -x ${VM.agentBinary}`,
        "systemctl daemon-reload",
        "systemctl enable sam-agent.service",
        "systemctl start --no-block sam-agent.service",
      ],
    },
  ];
}

function pidVar(phase: string): string {
  return `pid_${phase.replace(/-/g, "_")}`;
}

export function marker(kind: "START" | "END" | "FAILED", phase: string): string {
  return `logger -t ${BOOT_TAG} 'PHASE ${kind}: ${phase}'`;
}

function renderPhase(phase: BootPhase): string {
  const joins = (phase.joins ?? []).map((j) => `wait "$${pidVar(j)}"`);
  const chain = [...joins, ...phase.run];
  const body = chain.length === 0 ? "true" : chain.join(" &&\n  ");
  const failure = [marker("FAILED", phase.name), ...(phase.onFailure ?? [])];
  // A background job exits non-zero on failure so the phase that joins it fails too.
  if (phase.background) failure.push("exit 1");
  const lines = [
    marker("START", phase.name),
    `if ${body}; then`,
    `  ${marker("END", phase.name)}`,
    "else",
    ...failure.map((l) => `  ${l}`),
    "fi",
  ];
  if (!phase.background) return lines.join("\n");
  return [
    "(",
    ...lines.join("\n").split("\n").map((l) => `  ${l}`),
    `) >>${VM.bootLogDir}/${phase.name}.log 2>&1 &`,
    `${pidVar(phase.name)}=$!`,
  ].join("\n");
}

/** The preamble every phase relies on: a predictable umask and the directories the jobs write to. */
const PREAMBLE = [
  "umask 022",
  `mkdir -p ${VM.bootLogDir} /usr/local/lib/sam /usr/local/bin ${VM.agentDataDir}`,
].join("\n");

/** `runcmd` entries: one string per phase, which cloud-init writes one after another into one `sh` script. */
export function renderRuncmd(plan: BootPhase[]): string[] {
  return [PREAMBLE, ...plan.map(renderPhase)];
}
