#!/usr/bin/env node
// The Debian packages the tests use, each found by a command it provides. `npm test` (and `.ci/run`) call
// `ensureSystemPackages(group)`: missing ones are installed with apt-get when we are root, otherwise the run
// stops at once with one line naming the exact command to run — never a test that silently skips.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { pathToFileURL } from "node:url";

/** group → [command (or absolute path) that proves the package is there, Debian package]. */
export const SYSTEM_PACKAGES = {
  test: [
    ["cloud-init", "cloud-init"],
    ["shellcheck", "shellcheck"],
    ["systemd-analyze", "systemd"],
    ["chromium", "chromium"],
    ["sqlite3", "sqlite3"],
    ["git", "git"],
    ["openssl", "openssl"],
    ["unshare", "util-linux"],
    ["prlimit", "util-linux"],
    ["setpriv", "util-linux"],
    ["bwrap", "bubblewrap"],
  ],
  // `npm run test:boot` (lab/): a Debian VM built with mmdebstrap, booted under qemu with a NoCloud seed ISO.
  lab: [
    ["qemu-system-x86_64", "qemu-system-x86"],
    ["qemu-img", "qemu-utils"],
    ["mmdebstrap", "mmdebstrap"],
    ["genisoimage", "genisoimage"],
    ["socat", "socat"],
    ["/bin/busybox", "busybox-static"],
    ["mkfs.ext4", "e2fsprogs"],
    ["openssl", "openssl"],
  ],
};

const present = (probe) =>
  probe.startsWith("/")
    ? existsSync(probe)
    : spawnSync("sh", ["-c", `command -v ${probe}`], { stdio: "ignore" }).status === 0;

const canInstall = () => typeof process.getuid === "function" && process.getuid() === 0 && present("apt-get");

/**
 * Makes sure every `[probe, package]` entry is present. Returns the packages it installed; exits the process
 * with one line naming the command to run when something is missing and it cannot install (not root).
 */
export function ensureSystemPackages(entries, { log = (m) => console.error(m), install = canInstall() } = {}) {
  const missing = [...new Set(entries.filter(([probe]) => !present(probe)).map(([, pkg]) => pkg))];
  if (missing.length === 0) return [];
  const command = `apt-get update && apt-get install -y --no-install-recommends ${missing.join(" ")}`;
  if (!install) {
    log(`setup: the tests need Debian packages that are missing; run: sudo sh -c '${command}'`);
    process.exit(1);
  }
  log(`setup: installing Debian packages the tests use: ${missing.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  for (const args of [["update", "-qq"], ["install", "-y", "-qq", "--no-install-recommends", ...missing]]) {
    const r = spawnSync("apt-get", args, { stdio: ["ignore", "ignore", "inherit"], env });
    if (r.status !== 0) {
      log(`setup: 'apt-get ${args.join(" ")}' failed (exit ${r.status ?? r.signal}); run: sudo sh -c '${command}'`);
      process.exit(1);
    }
  }
  return missing;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const group = process.argv[2] ?? "test";
  if (!SYSTEM_PACKAGES[group]) {
    console.error(`system-packages: unknown group '${group}' (${Object.keys(SYSTEM_PACKAGES).join(", ")})`);
    process.exit(2);
  }
  ensureSystemPackages(SYSTEM_PACKAGES[group]);
}
