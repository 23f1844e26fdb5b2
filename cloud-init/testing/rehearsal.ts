/**
 * Rehearsing a boot on this machine: the rendered user-data is turned into the very script cloud-init would
 * run (cloud-init's own `shellify`, through the Python of the installed cloud-init), its `write_files` are
 * materialised, and both are moved under a temp root so nothing touches this machine's `/etc` or `/usr`.
 * The commands the VM would use that this machine cannot run for real (`docker`, `systemctl`, `iptables`,
 * `logger`, `curl`, `apt-get`, `ip`) are fakes that record their calls with timestamps and sleep briefly.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parse } from "yaml";

/** The Python that runs the installed cloud-init (its shebang), so `import cloudinit` resolves. */
function cloudInitPython(): string {
  const which = Bun.spawnSync(["sh", "-c", "command -v cloud-init"]);
  const path = which.stdout.toString().trim();
  if (which.exitCode !== 0 || path === "") throw new Error("cloud-init is not installed (apt-get install cloud-init)");
  const shebang = readFileSync(path, "utf8").split("\n")[0] ?? "";
  const python = shebang.replace(/^#!\s*/, "").split(/\s+/)[0];
  if (!python) throw new Error(`cannot find the Python of ${path}`);
  return python;
}

/** The `runcmd` script exactly as cloud-init writes it (`/var/lib/cloud/instance/scripts/runcmd`). */
export function runcmdScript(userData: string): string {
  const code =
    "import sys\nfrom cloudinit import util\ncfg = util.load_yaml(sys.stdin.read())\nsys.stdout.write(util.shellify(cfg['runcmd']))";
  const proc = Bun.spawnSync([cloudInitPython(), "-c", code], { stdin: new TextEncoder().encode(userData) });
  if (proc.exitCode !== 0) throw new Error(`cloud-init shellify failed: ${proc.stderr.toString()}`);
  return proc.stdout.toString();
}

/** Absolute VM paths the boot writes to, moved under `root`. `/dev/null` and friends stay. */
export function underRoot(text: string, root: string): string {
  return text.replace(
    /(^|[\s'"=>@])(\/(?:usr\/local|etc|var|run)(?=[\/\s'";]|$))/gm,
    (_, pre: string, path: string) => `${pre}${root}${path}`,
  );
}

type WriteFileEntry = { path: string; content: string; permissions: string };

/** Write the user-data's `write_files` under `root`, with their permissions. */
export function materialiseWriteFiles(userData: string, root: string): void {
  const doc = parse(userData) as { write_files?: WriteFileEntry[] };
  for (const f of doc.write_files ?? []) {
    const target = join(root, f.path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, f.content);
    chmodSync(target, Number.parseInt(f.permissions, 8));
  }
}

/**
 * Each fake appends one line `start_us end_us tool args…` to `$SAM_FAKE_CALLS`. `logger` also appends the
 * journald JSON line `journalctl -o json` would show to `$SAM_FAKE_JOURNAL`.
 */
const RECORD =
  `record() { printf '%s %s %s\\n' "$start" "$(date +%s%6N)" "$*" >>"$SAM_FAKE_CALLS"; }\nstart=$(date +%s%6N)\n`;

const FAKES: Record<string, string> = {
  logger: `${RECORD}tag=; while [ $# -gt 1 ]; do case "$1" in -t) tag=$2; shift 2;; *) break;; esac; done
msg=$(printf '%s' "$1" | sed 's/\\\\/\\\\\\\\/g; s/"/\\\\"/g')
printf '{"__REALTIME_TIMESTAMP":"%s","SYSLOG_IDENTIFIER":"%s","MESSAGE":"%s","PRIORITY":"5"}\\n' "$(date +%s%6N)" "$tag" "$msg" >>"$SAM_FAKE_JOURNAL"
record logger "$tag" "$1"
`,
  docker:
    `${RECORD}if [ "$1" = pull ]; then sleep "\${SAM_FAKE_PULL_SECONDS:-0.3}"; record docker "$@"; exit "\${SAM_FAKE_PULL_EXIT:-0}"; fi
record docker "$@"
`,
  // Serves files from $SAM_FAKE_DOWNLOADS by the URL's last path segment; unknown URLs are a 404 (exit 22).
  curl: `${RECORD}out=; url=
data=
while [ $# -gt 0 ]; do case "$1" in -o) out=$2; shift 2;; --data-binary) data=$2; shift 2;; --retry|--connect-timeout|-m|-H) shift 2;; -*) shift;; *) url=$1; shift;; esac; done
case "$url" in */api/agent/boot-progress) record curl "$url" "$data"; exit 0;; esac
src="$SAM_FAKE_DOWNLOADS/\${url##*/}"
case "$url" in *.tar.gz) sleep "\${SAM_FAKE_NODE_SECONDS:-0.3}";; esac
if [ ! -f "$src" ]; then record curl "$url" 404; exit 22; fi
cp "$src" "$out"
record curl "$url"
`,
  // \`systemctl show -p ActiveEnterTimestamp\` answers $SAM_FAKE_DOCKER_SINCE (empty: docker never started).
  systemctl:
    `${RECORD}record systemctl "$@"\n[ "$1" = show ] && printf '%s\\n' "\${SAM_FAKE_DOCKER_SINCE:-}"\nexit 0\n`,
  // \`ip -4 route get\` as on a Hetzner VM: the default route's source is the public IPv4 on eth0.
  ip: `${RECORD}record ip "$@"\nprintf '1.1.1.1 via 172.31.1.1 dev eth0 src 203.0.113.7 uid 0 \\n    cache \\n'\n`,
  iptables: `${RECORD}record iptables "$@"\n[ "$1" = -C ] && exit 1\nexit 0\n`,
  ip6tables: `${RECORD}record ip6tables "$@"\n[ "$1" = -C ] && exit 1\nexit 0\n`,
  "apt-get": `${RECORD}sleep 0.2\nrecord apt-get "$@"\nexit "\${SAM_FAKE_APT_EXIT:-0}"\n`,
};

/** Write the fakes into `dir` (executable). */
export function writeFakes(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, body] of Object.entries(FAKES)) {
    writeFileSync(join(dir, name), `#!/bin/sh\n${body}`);
    chmodSync(join(dir, name), 0o755);
  }
}

export type Call = { startUs: number; endUs: number; tool: string; args: string[] };

export function readCalls(path: string): Call[] {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  return text.trim().split("\n").filter(Boolean).map((line) => {
    const [start, end, tool, ...args] = line.split(" ");
    return { startUs: Number(start), endUs: Number(end), tool: tool ?? "", args };
  });
}
