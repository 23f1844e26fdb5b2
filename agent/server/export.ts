/**
 * Database downloads (`/events/export`, `/metrics/export`). The store hands over a consistent snapshot as
 * an open descriptor (normally its own main file, frozen while the download runs; see `Snapshots`). A
 * small snapshot is read into memory and released at once; a large one is streamed by Bun with sendfile
 * through `/proc/self/fd/N`, which keeps `Content-Length` (Bun drops it for JS streams). We watch for
 * Bun's own descriptor to the file and release the snapshot when Bun has closed it (sent, or the client
 * went away), so nothing is held or left behind after the download.
 */
import { nodeFs } from "../runtime/lazy-node-modules.ts";
import { HttpError } from "../../shared/errors.ts";
import type { Snapshot } from "../storage/sqlite.ts";

export type Snapshotter = { openSnapshot(tempPath: string, opts: { inPlace: boolean }): Snapshot };

/** `20261124T023138Z`: sortable and safe in a file name. */
export function utcStamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
}

const TEMP_PREFIX = ".export-";
/** How long we look for Bun's own descriptor to a streamed snapshot (see `releaseWhenServed`). */
const SEE_MS = 1_000;
/**
 * Snapshots up to this size are copied into memory and released before the response: small files are
 * what loopback can send in one turn of the event loop, faster than we can watch.
 */
const IN_MEMORY_MAX = 4 * 1024 * 1024;

/** Remove temp files an earlier process left (a crash mid-export). Bun's glob: this runs at every start. */
export async function sweepExportTemps(dir: string): Promise<void> {
  for await (const name of new Bun.Glob(`${TEMP_PREFIX}*`).scan({ cwd: dir, dot: true })) {
    await Bun.file(`${dir}/${name}`).delete().catch(() => {});
  }
}

function descriptorsTo(target: string): number[] {
  const found: number[] = [];
  for (const fd of nodeFs().readdirSync("/proc/self/fd")) {
    try {
      if (nodeFs().readlinkSync(`/proc/self/fd/${fd}`) === target) found.push(Number(fd));
    } catch {
      // closed while we looked
    }
  }
  return found;
}

/** The TCP connection a download goes out on (both ports), to watch the kernel's queues drain. */
export type Connection = { serverPort: number; clientPort: number };

/**
 * Bytes the kernel still holds for the connection: our send queue and, when the client is on this
 * machine, its receive queue. sendfile queues references to page-cache pages rather than copies (on
 * loopback they travel on into the client's receive queue), so the file must not change until these
 * are empty, even after Bun has closed its descriptor.
 */
function queuedBytes(c: Connection): number {
  let total = 0;
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = nodeFs().readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 5) continue;
      const local = parseInt(f[1]!.slice(f[1]!.lastIndexOf(":") + 1), 16);
      const remote = parseInt(f[2]!.slice(f[2]!.lastIndexOf(":") + 1), 16);
      if ((local === c.serverPort && remote === c.clientPort) || (local === c.clientPort && remote === c.serverPort)) {
        const [tx, rx] = f[4]!.split(":").map((h) => parseInt(h, 16));
        total += (tx ?? 0) + (rx ?? 0);
      }
    }
  }
  return total;
}

/**
 * Close our descriptor once Bun has its own to the same file, and release the snapshot once Bun's is
 * closed again and the connection's kernel queues are empty (see `queuedBytes`). `before` are the
 * descriptors to that file that existed before the response (ours, SQLite's). Bun opens the file while
 * it renders the response, before the next turn of the event loop; if no new descriptor is seen within
 * `SEE_MS`, Bun has already handed the whole file to the kernel and closed it.
 */
async function releaseWhenServed(
  fd: number,
  target: string,
  before: Set<number>,
  connection: Connection,
  snapshot: Snapshot,
): Promise<void> {
  const newDescriptors = () => descriptorsTo(target).filter((d) => !before.has(d));
  let bun: number[] = [];
  try {
    await new Promise((resolve) => setImmediate(resolve));
    const deadline = Date.now() + SEE_MS;
    while ((bun = newDescriptors()).length === 0 && Date.now() < deadline) await Bun.sleep(5);
    nodeFs().closeSync(fd);
    while (bun.some((d) => descriptorsTo(target).includes(d))) await Bun.sleep(20);
    while (queuedBytes(connection) > 0) await Bun.sleep(20);
  } finally {
    snapshot.release();
  }
}

const headers = (opts: { kind: string; nodeId: string; now: number }, size: number) => ({
  "Content-Type": "application/vnd.sqlite3",
  "Content-Disposition": `attachment; filename="${opts.kind}-${opts.nodeId}-${utcStamp(opts.now)}.db"`,
  "Content-Length": String(size),
  "Cache-Control": "no-store",
});

export function exportResponse(opts: {
  kind: "events" | "metrics";
  source: Snapshotter;
  dir: string;
  nodeId: string;
  now: number;
  /** Without it (a server that cannot say), the snapshot is always a copy. */
  connection: Connection | null;
}): Response {
  let snapshot: Snapshot;
  try {
    const tempPath = `${opts.dir}/${TEMP_PREFIX}${opts.kind}-${crypto.randomUUID()}.db`;
    snapshot = opts.source.openSnapshot(tempPath, { inPlace: opts.connection !== null });
  } catch (err) {
    throw new HttpError(503, `cannot snapshot ${opts.kind}.db: ${(err as Error).message}`, { code: "snapshot_failed" });
  }
  const { fd, size } = snapshot;
  if (size <= IN_MEMORY_MAX) {
    const bytes = new Uint8Array(size);
    try {
      for (let at = 0; at < size;) {
        const n = nodeFs().readSync(fd, bytes, at, size - at, at);
        if (n === 0) throw new Error("the snapshot ended early");
        at += n;
      }
    } catch (err) {
      throw new HttpError(503, `cannot read the ${opts.kind}.db snapshot: ${(err as Error).message}`, {
        code: "snapshot_failed",
      });
    } finally {
      nodeFs().closeSync(fd);
      snapshot.release();
    }
    return new Response(bytes, { headers: headers(opts, size) });
  }
  const target = nodeFs().readlinkSync(`/proc/self/fd/${fd}`);
  const before = new Set(descriptorsTo(target));
  void releaseWhenServed(fd, target, before, opts.connection ?? { serverPort: -1, clientPort: -1 }, snapshot);
  return new Response(Bun.file(`/proc/self/fd/${fd}`), { headers: headers(opts, size) });
}
