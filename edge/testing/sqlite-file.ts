/** A real SQLite database with a few rows, as an agent's export would deliver it (bun:sqlite, Bun side only). */
import { Database } from "bun:sqlite";

export function sqliteFile(table: string, rows: number): Uint8Array<ArrayBuffer> {
  const db = new Database(":memory:");
  db.run(`CREATE TABLE ${table} (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, body TEXT NOT NULL)`);
  const insert = db.prepare(`INSERT INTO ${table} (at, body) VALUES (?, ?)`);
  db.transaction(() => {
    for (let i = 0; i < rows; i++) insert.run(Date.now(), `row ${i}`);
  })();
  const bytes = new Uint8Array(db.serialize());
  db.close();
  return bytes;
}

export function sqliteDownload(bytes: Uint8Array<ArrayBuffer>, filename: string): Response {
  return new Response(bytes, {
    headers: {
      "Content-Type": "application/vnd.sqlite3",
      "Content-Disposition": `attachment; filename="${filename}"`,
      "Content-Length": String(bytes.byteLength),
    },
  });
}
