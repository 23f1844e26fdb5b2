/** `metrics.db`: one row per resource-monitor sample, same retention and export as the event log. */
import type { Database } from "bun:sqlite";
import type { MetricsSample } from "../../shared/wire/metrics.ts";
import { openDatabase, pruneInChunks, type Snapshot, Snapshots } from "../storage/sqlite.ts";

const MIGRATIONS = [
  `CREATE TABLE samples (
     at INTEGER NOT NULL PRIMARY KEY,
     cpu_percent REAL,
     load1 REAL NOT NULL, load5 REAL NOT NULL, load15 REAL NOT NULL,
     mem_total_bytes INTEGER NOT NULL, mem_used_bytes INTEGER NOT NULL,
     swap_total_bytes INTEGER NOT NULL, swap_used_bytes INTEGER NOT NULL,
     disk_path TEXT NOT NULL, disk_total_bytes INTEGER NOT NULL, disk_used_bytes INTEGER NOT NULL, disk_free_bytes INTEGER NOT NULL,
     data_disk_path TEXT, data_disk_total_bytes INTEGER, data_disk_used_bytes INTEGER, data_disk_free_bytes INTEGER,
     net_rx_bytes INTEGER, net_tx_bytes INTEGER
   ) WITHOUT ROWID;`,
];

type Row = {
  at: number;
  cpu_percent: number | null;
  load1: number;
  load5: number;
  load15: number;
  mem_total_bytes: number;
  mem_used_bytes: number;
  swap_total_bytes: number;
  swap_used_bytes: number;
  disk_path: string;
  disk_total_bytes: number;
  disk_used_bytes: number;
  disk_free_bytes: number;
  data_disk_path: string | null;
  data_disk_total_bytes: number | null;
  data_disk_used_bytes: number | null;
  data_disk_free_bytes: number | null;
  net_rx_bytes: number | null;
  net_tx_bytes: number | null;
};

export class MetricsStore {
  readonly path: string;
  private readonly db: Database;
  private readonly insert;
  private readonly snapshots: Snapshots;
  private closed = false;

  constructor(path: string) {
    this.path = path;
    this.db = openDatabase(path, MIGRATIONS);
    this.snapshots = new Snapshots(this.db, path);
    this.insert = this.db.query(
      `INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  add(s: MetricsSample): void {
    if (this.closed) return;
    const dd = s.dataDisk ?? null;
    this.insert.run(
      s.at,
      s.cpuPercent,
      s.load1,
      s.load5,
      s.load15,
      s.memTotalBytes,
      s.memUsedBytes,
      s.swapTotalBytes,
      s.swapUsedBytes,
      s.disk.path,
      s.disk.totalBytes,
      s.disk.usedBytes,
      s.disk.freeBytes,
      dd?.path ?? null,
      dd?.totalBytes ?? null,
      dd?.usedBytes ?? null,
      dd?.freeBytes ?? null,
      s.netRxBytes ?? null,
      s.netTxBytes ?? null,
    );
  }

  /** The newest `limit` samples in [since, until), oldest first (what a chart wants). */
  list(q: { since?: number; until?: number; limit: number }): MetricsSample[] {
    const rows = this.db.query(
      `SELECT * FROM (SELECT * FROM samples WHERE at >= ? AND at < ? ORDER BY at DESC LIMIT ?) ORDER BY at`,
    ).all(q.since ?? 0, q.until ?? Number.MAX_SAFE_INTEGER, q.limit) as Row[];
    return rows.map(toSample);
  }

  prune(cutoff: number): Promise<number> {
    // `samples` is WITHOUT ROWID, keyed by its time.
    return pruneInChunks(this.db, "samples", "at", cutoff, { keyColumn: "at" });
  }

  openSnapshot(tempPath: string, opts: { inPlace: boolean }): Snapshot {
    return this.snapshots.open(tempPath, opts);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.snapshots.close();
    this.db.close();
  }
}

function toSample(r: Row): MetricsSample {
  return {
    at: r.at,
    cpuPercent: r.cpu_percent,
    load1: r.load1,
    load5: r.load5,
    load15: r.load15,
    memTotalBytes: r.mem_total_bytes,
    memUsedBytes: r.mem_used_bytes,
    swapTotalBytes: r.swap_total_bytes,
    swapUsedBytes: r.swap_used_bytes,
    disk: {
      path: r.disk_path,
      totalBytes: r.disk_total_bytes,
      usedBytes: r.disk_used_bytes,
      freeBytes: r.disk_free_bytes,
    },
    dataDisk: r.data_disk_path === null ? null : {
      path: r.data_disk_path,
      totalBytes: r.data_disk_total_bytes ?? 0,
      usedBytes: r.data_disk_used_bytes ?? 0,
      freeBytes: r.data_disk_free_bytes ?? 0,
    },
    netRxBytes: r.net_rx_bytes,
    netTxBytes: r.net_tx_bytes,
  };
}
