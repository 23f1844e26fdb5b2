/**
 * Database downloads (`/events/export`, `/metrics/export`): a consistent snapshot is written to a temp file
 * beside the databases, the file is unlinked at once (our descriptor keeps it readable), and Bun streams it
 * with sendfile through `/proc/self/fd/N`, which keeps `Content-Length` (Bun drops it for JS streams).
 * Our descriptor is closed as soon as Bun holds its own, so nothing is left behind even when a client
 * disconnects mid-download.
 */
import { closeSync, fstatSync, openSync, readdirSync, readlinkSync, rmSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { HttpError } from "../../shared/errors.ts";

export type Snapshotter = { snapshot(dest: string): void };

/** `20261124T023138Z`: sortable and safe in a file name. */
export function utcStamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
}

const TEMP_PREFIX = ".export-";
/** How long we keep our descriptor when we never see Bun open its own (a tiny file sent at once). */
const HOLD_MS = 60_000;

/** Remove temp files an earlier process left (a crash mid-export). */
export function sweepExportTemps(dir: string): void {
  for (const name of readdirSync(dir)) {
    if (name.startsWith(TEMP_PREFIX)) rmSync(join(dir, name), { force: true });
  }
}

function openDescriptorsTo(target: string, except: number): boolean {
  for (const fd of readdirSync("/proc/self/fd")) {
    if (Number(fd) === except) continue;
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === target) return true;
    } catch {
      // closed while we looked
    }
  }
  return false;
}

async function releaseWhenServed(fd: number): Promise<void> {
  const target = readlinkSync(`/proc/self/fd/${fd}`);
  const deadline = Date.now() + HOLD_MS;
  while (Date.now() < deadline && !openDescriptorsTo(target, fd)) await Bun.sleep(20);
  closeSync(fd);
}

export function exportResponse(opts: {
  kind: "events" | "metrics";
  source: Snapshotter;
  dir: string;
  nodeId: string;
  now: number;
}): Response {
  const tmp = join(opts.dir, `${TEMP_PREFIX}${opts.kind}-${crypto.randomUUID()}.db`);
  let fd: number;
  try {
    opts.source.snapshot(tmp);
    fd = openSync(tmp, "r");
  } catch (err) {
    throw new HttpError(503, `cannot snapshot ${opts.kind}.db: ${(err as Error).message}`, { code: "snapshot_failed" });
  } finally {
    rmSync(tmp, { force: true });
  }
  const size = fstatSync(fd).size;
  void releaseWhenServed(fd);
  return new Response(Bun.file(`/proc/self/fd/${fd}`), {
    headers: {
      "Content-Type": "application/vnd.sqlite3",
      "Content-Disposition": `attachment; filename="${opts.kind}-${opts.nodeId}-${utcStamp(opts.now)}.db"`,
      "Content-Length": String(size),
      "Cache-Control": "no-store",
    },
  });
}
