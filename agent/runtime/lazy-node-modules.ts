/**
 * Node's modules, loaded on first use. In the compiled binary a static `import … from "node:fs"` (anywhere
 * in the bundle) runs at start, and each of Node's modules pages in Bun code the idle agent never needs:
 * measured on a compiled `Bun.serve`, `node:fs` adds ≈ 5 MiB RSS, `node:crypto` ≈ 6, `node:path` ≈ 2,
 * `node:os` ≈ 0.7 (the idle agent must stay under 40 MB RSS, docs/agent.md § Memory). The idle path uses Bun's own APIs (`Bun.file`, `Bun.write`,
 * `Bun.CryptoHasher`); the paths that need Node's (exports, tasks, the monitor's statfs) load them here.
 * `import.meta.require` keeps the load lazy in the bundle, where a plain `require` would turn the module into
 * CommonJS.
 */
type Fs = typeof import("node:fs");
type FsPromises = typeof import("node:fs/promises");
type Path = typeof import("node:path");
type Os = typeof import("node:os");

let fs: Fs | undefined;
let fsPromises: FsPromises | undefined;
let path: Path | undefined;
let os: Os | undefined;

export const nodeFs = (): Fs => (fs ??= import.meta.require("node:fs") as Fs);
export const nodeFsPromises = (): FsPromises => (fsPromises ??= import.meta.require("node:fs/promises") as FsPromises);
export const nodePath = (): Path => (path ??= import.meta.require("node:path") as Path);
export const nodeOs = (): Os => (os ??= import.meta.require("node:os") as Os);
