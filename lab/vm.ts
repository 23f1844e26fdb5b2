/**
 * One lab VM under qemu with software emulation (KVM here is nested PVM and hangs a stock kernel): direct
 * kernel boot of the cached image through a copy-on-write overlay, the rendered user-data on a NoCloud seed
 * ISO, and user networking that never leaves the machine (`restrict=on`; `guestfwd` rules connect one guest
 * address to the edge and the stand-ins on host loopback, `hostfwd` exposes the agent's port).
 *
 * The seed also carries what the lab itself needs from the guest: the network (default route or none), the
 * host names of the stand-ins, the test CA, and a vendor-data probe that writes the agent unit's state and
 * the `sam-boot` journal to a second serial port, so the lab can compare what the edge was told with what the
 * guest recorded.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import type { Image } from "./image.ts";
import { run } from "./process.ts";
import { freePort } from "../shared/testing/free-port.ts";

export type VmOptions = {
  name: string;
  dir: string;
  image: Image;
  userData: string;
  /** The guest's /24 is 10.0.<subnet>.0: the agent is at .15, the stand-ins at .100. */
  subnet: number;
  edgePort: number;
  standInPort: number;
  hostNames: string[];
  caCert: string;
  /** No default route (and no IPv6): the boot's tls phase has no address to name. */
  noRoute?: boolean;
  memoryMiB?: number;
  cpus?: number;
};

export type GuestState = {
  activeState: string;
  subState: string;
  restarts: number;
  journal: string;
  files: string[];
  /** The last lines of each background job's log (/var/log/sam-boot), to read why one failed. */
  bootLogs: string;
};

export type Vm = {
  name: string;
  guestIp: string;
  agentHostPort: number;
  startedAt: number;
  consoleLog: string;
  /** The latest state the guest's probe wrote, or null before the first. */
  state(): GuestState | null;
  /** A clean reboot, as Ctrl-Alt-Del on the console asks systemd for one. */
  reboot(): Promise<void>;
  stop(): Promise<void>;
  exited: Promise<number | null>;
};

/**
 * The guest state in the probe's serial log: its last complete block. The probe may be half-way through
 * writing the next one (a block is ~15 KB and an emulated serial line is slow), so this reads up to the last
 * END, not from the last BEGIN.
 */
export function parseProbe(log: string): GuestState | null {
  // The serial line turns each \n into \r\n.
  const text = log.replace(/\r/g, "");
  const end = text.lastIndexOf("=====END");
  const begin = end < 0 ? -1 : text.lastIndexOf("=====BEGIN\n", end);
  if (begin < 0) return null;
  const block = text.slice(begin + 11, end);
  const [unit = "", rest = ""] = block.split("--journal--\n");
  const [journal = "", after = ""] = rest.split("--files--\n");
  const [files = "", bootLogs = ""] = after.split("--bootlogs--\n");
  const prop = (k: string): string => unit.match(new RegExp(`^${k}=(.*)$`, "m"))?.[1] ?? "";
  return {
    activeState: prop("ActiveState"),
    subState: prop("SubState"),
    restarts: Number(prop("NRestarts") || 0),
    journal,
    files: files.split("\n").filter(Boolean),
    bootLogs,
  };
}

const PROBE = `#!/bin/sh
# SAM lab probe: the agent unit's state and every sam-boot marker, to ttyS1 whenever they change.
last=
while :; do
  s=$( { systemctl show sam-agent.service -p ActiveState -p SubState -p NRestarts; echo '--journal--'; journalctl -t sam-boot -o json --no-pager; echo '--files--'; ls /usr/local/lib/sam; echo '--bootlogs--'; tail -n 4 /var/log/sam-boot/*.log; } 2>&1 )
  if [ "$s" != "$last" ]; then printf '=====BEGIN\\n%s\\n=====END\\n' "$s" >/dev/ttyS1; last=$s; fi
  sleep 2
done
`;

function vendorData(): string {
  // bootcmd runs at every boot, before SAM's runcmd; SAM's user-data has none, so nothing is overridden.
  // --no-block: cloud-init.service runs before sysinit.target, which the probe's unit is ordered after.
  const script = Buffer.from(PROBE).toString("base64");
  // qemu's user networking trips conntrack's strict TCP window tracking under emulation: replies to the
  // guest's own connections were dropped as INVALID once SAM's firewall set INPUT to DROP.
  return `#cloud-config\nbootcmd:\n  - [sh, -c, "modprobe nf_conntrack && sysctl -qw net.netfilter.nf_conntrack_tcp_be_liberal=1 || true"]\n  - [sh, -c, "echo ${script} | base64 -d >/run/sam-lab-probe && systemd-run --no-block --unit=sam-lab-probe sh /run/sam-lab-probe"]\n`;
}

function network(o: VmOptions): string {
  const lines = [
    "[Match]",
    "Name=en* eth*",
    "",
    "[Network]",
    "DHCP=ipv4",
    `IPv6AcceptRA=${o.noRoute ? "no" : "yes"}`,
    "LinkLocalAddressing=no",
  ];
  if (!o.noRoute) lines.push("", "[Route]", `Gateway=10.0.${o.subnet}.2`);
  return `${lines.join("\n")}\n`;
}

function hmp(socketPath: string, command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = createConnection(socketPath, () => {
      c.write(`${command}\n`);
      setTimeout(() => {
        c.end();
        resolve();
      }, 300);
    });
    c.on("error", reject);
  });
}

export async function bootVm(o: VmOptions): Promise<Vm> {
  mkdirSync(o.dir, { recursive: true });
  const seed = join(o.dir, "seed");
  mkdirSync(join(seed, "network"), { recursive: true });
  writeFileSync(join(seed, "user-data"), o.userData);
  writeFileSync(join(seed, "meta-data"), `instance-id: ${o.name}\nlocal-hostname: ${o.name}\n`);
  writeFileSync(join(seed, "vendor-data"), vendorData());
  writeFileSync(join(seed, "network", "10-lab.network"), network(o));
  writeFileSync(join(seed, "hosts"), `10.0.${o.subnet}.100 ${o.hostNames.join(" ")}\n`);
  writeFileSync(join(seed, "ca.crt"), o.caCert);
  const iso = join(o.dir, "seed.iso");
  await run("genisoimage", ["-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock", seed]);
  const disk = join(o.dir, "disk.qcow2");
  await run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", o.image.rootfs, "-F", "raw", disk]);

  const agentHostPort = await freePort();
  const guestIp = `10.0.${o.subnet}.15`;
  const fwd = `10.0.${o.subnet}.100`;
  const netdev = [
    "user",
    "id=n0",
    "restrict=on",
    "ipv4=on",
    `net=10.0.${o.subnet}.0/24`,
    `ipv6=${o.noRoute ? "off" : "on"}`,
    `hostfwd=tcp:127.0.0.1:${agentHostPort}-${guestIp}:8443`,
    `guestfwd=tcp:${fwd}:80-cmd:socat - TCP:127.0.0.1:${o.edgePort}`,
    `guestfwd=tcp:${fwd}:443-cmd:socat - TCP:127.0.0.1:${o.standInPort}`,
  ].join(",");
  const consoleLog = join(o.dir, "console.log");
  const probeLog = join(o.dir, "probe.log");
  const monitor = join(o.dir, "monitor.sock");
  const args = [
    "-accel",
    "tcg,thread=multi",
    "-cpu",
    "max",
    "-smp",
    String(o.cpus ?? 2),
    "-m",
    String(o.memoryMiB ?? 4096),
    "-display",
    "none",
    "-no-user-config",
    "-nodefaults",
    "-serial",
    `file:${consoleLog}`,
    "-serial",
    `file:${probeLog}`,
    "-monitor",
    `unix:${monitor},server,nowait`,
    "-kernel",
    o.image.kernel,
    "-initrd",
    o.image.initrd,
    // no_timer_check and cryptomgr.notests: an emulated CPU fails the IO-APIC timer check and can hang in the
    // crypto self-tests; apparmor=0: the minimal image has no apparmor_parser, which Docker needs when it is on.
    "-append",
    "root=/dev/vda rw console=ttyS0 quiet systemd.show_status=1 net.ifnames=0 no_timer_check cryptomgr.notests apparmor=0",
    "-drive",
    `file=${disk},if=virtio,format=qcow2,cache=unsafe`,
    "-drive",
    `file=${iso},if=virtio,format=raw,readonly=on`,
    "-netdev",
    netdev,
    "-device",
    "virtio-net-pci,netdev=n0,romfile=",
    "-device",
    "virtio-rng-pci",
  ];
  const startedAt = Date.now();
  const child: ChildProcess = spawn("qemu-system-x86_64", args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code) => {
      if (code) writeFileSync(join(o.dir, "qemu.stderr"), stderr);
      resolve(code);
    })
  );

  return {
    name: o.name,
    guestIp,
    agentHostPort,
    startedAt,
    consoleLog,
    exited,
    state: () => (existsSync(probeLog) ? parseProbe(readFileSync(probeLog, "utf8")) : null),
    reboot: () => hmp(monitor, "sendkey ctrl-alt-delete"),
    async stop() {
      if (child.exitCode !== null) return;
      try {
        await hmp(monitor, "quit");
      } catch {
        child.kill("SIGKILL");
      }
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
