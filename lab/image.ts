/**
 * The lab's VM image: a Debian 12 root built with mmdebstrap, the kernel and initrd beside it for a direct
 * kernel boot. Cached under a directory named by the hash of the recipe, so only a changed recipe rebuilds.
 *
 * The image is generic: everything a run varies (its network, the names it maps, the test CA) comes on the
 * NoCloud seed ISO and is applied by `sam-lab-seed.service` before networking and cloud-init start.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "./process.ts";

export const PACKAGES = [
  "linux-image-amd64",
  "systemd-sysv",
  "udev",
  "kmod",
  "cloud-init",
  "docker.io",
  "iptables",
  "iproute2",
  "openssl",
  "curl",
  "ca-certificates",
  "xz-utils",
  // The boot installs it when missing (the task sandbox); the lab's VMs have no Debian mirror to fetch it from.
  "bubblewrap",
  "git",
  "procps",
  "dbus",
];

/** Runs in the guest before networkd and cloud-init: applies what the seed ISO carries for this run. */
const SEED_SCRIPT = `#!/bin/sh
set -e
mkdir -p /run/sam-lab
mount -o ro /dev/disk/by-label/cidata /run/sam-lab
if [ -d /run/sam-lab/network ]; then mkdir -p /run/systemd/network && cp /run/sam-lab/network/* /run/systemd/network/; fi
if [ -f /run/sam-lab/hosts ]; then cat /run/sam-lab/hosts >>/etc/hosts; fi
# Appended to the bundle curl, Docker and NODE_EXTRA_CA_CERTS read: update-ca-certificates takes minutes under emulation.
if [ -f /run/sam-lab/ca.crt ]; then cat /run/sam-lab/ca.crt >>/etc/ssl/certs/ca-certificates.crt; fi
umount /run/sam-lab
`;

const SEED_UNIT = `[Unit]
Description=SAM lab: apply the run's network, names and CA from the seed ISO
DefaultDependencies=no
Requires=dev-disk-by\\x2dlabel-cidata.device
After=dev-disk-by\\x2dlabel-cidata.device local-fs.target
Before=systemd-networkd.service cloud-init-local.service network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/sam-lab-seed

[Install]
WantedBy=sysinit.target
`;

const CLOUD_CFG = `datasource_list: [ NoCloud, None ]
network: {config: disabled}
`;

/** Files the customize hook writes into the root, as [path, content, mode]. */
export const FILES: [string, string, string][] = [
  ["/usr/local/sbin/sam-lab-seed", SEED_SCRIPT, "0755"],
  ["/etc/systemd/system/sam-lab-seed.service", SEED_UNIT, "0644"],
  ["/etc/cloud/cloud.cfg.d/90-sam-lab.cfg", CLOUD_CFG, "0644"],
  ["/etc/fstab", "/dev/vda / ext4 rw,relatime 0 1\n", "0644"],
  ["/etc/hostname", "sam-lab\n", "0644"],
];

const HOOKS = [
  'systemctl --root="$1" enable sam-lab-seed.service systemd-networkd.service',
  // The lab never logs in; the serial console shows the boot.
  'systemctl --root="$1" mask getty@tty1.service serial-getty@ttyS0.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer',
  'rm -f "$1"/etc/machine-id && : >"$1"/etc/machine-id',
];

export const IMAGE_SIZE = "10G";

export function recipeHash(): string {
  return createHash("sha256").update(JSON.stringify({ PACKAGES, FILES, HOOKS, IMAGE_SIZE, v: 1 })).digest("hex").slice(
    0,
    16,
  );
}

export type Image = { dir: string; rootfs: string; kernel: string; initrd: string };

export function imagePaths(cacheDir: string): Image {
  const dir = join(cacheDir, `image-${recipeHash()}`);
  return { dir, rootfs: join(dir, "rootfs.img"), kernel: join(dir, "vmlinuz"), initrd: join(dir, "initrd.img") };
}

/** The cached image, built first when the recipe is new. */
export async function ensureImage(cacheDir: string, log: (line: string) => void): Promise<Image> {
  const image = imagePaths(cacheDir);
  if (existsSync(join(image.dir, "done"))) return image;
  const started = performance.now();
  log(`lab: building the VM image ${image.dir} (mmdebstrap, a few minutes)`);
  const work = `${image.dir}.tmp`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const root = join(work, "root");
  const hookFiles = FILES.map(([path, content, mode], i) => {
    const src = join(work, `file-${i}`);
    writeFileSync(src, content);
    return `install -D -m ${mode} ${src} "$1"${path}`;
  });
  await run("mmdebstrap", [
    "--variant=minbase",
    "--mode=root",
    `--include=${PACKAGES.join(",")}`,
    ...[...hookFiles, ...HOOKS].map((h) => `--customize-hook=${h}`),
    "bookworm",
    root,
    "http://deb.debian.org/debian",
  ]);
  const boot = join(root, "boot");
  const kernel = readdirSync(boot).find((f) => f.startsWith("vmlinuz-"));
  const initrd = readdirSync(boot).find((f) => f.startsWith("initrd.img-"));
  if (!kernel || !initrd) throw new Error("lab: the image has no kernel or initrd in /boot");
  await run("cp", [join(boot, kernel), join(work, "vmlinuz")]);
  await run("cp", [join(boot, initrd), join(work, "initrd.img")]);
  await run("mkfs.ext4", ["-q", "-F", "-L", "root", "-d", root, join(work, "rootfs.img"), IMAGE_SIZE]);
  rmSync(root, { recursive: true, force: true });
  writeFileSync(join(work, "done"), new Date().toISOString());
  rmSync(image.dir, { recursive: true, force: true });
  renameSync(work, image.dir);
  log(`lab: image built in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  return image;
}
