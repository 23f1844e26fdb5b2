/**
 * The admin pages over the whole real stack, as `npm start` runs it: the edge with its local provider, which
 * starts the real agent binary for a node. The node page renders from what that agent reports, and both
 * downloads deliver the agent's own SQLite snapshots through the edge's export proxy.
 */
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ADMIN_TOKEN, startTestEdge, type TestEdge } from "../testing/test-edge.ts";

const AGENT_BINARY = "agent/dist/sam-agent";
let served: TestEdge;
let nodeId: string;

beforeAll(async () => {
  // npm test's setup builds the binary; a missing one is a broken setup, not a reason to skip.
  if (!existsSync(AGENT_BINARY)) throw new Error(`${AGENT_BINARY} is missing: run npm run build:agent`);
  // No provider given: the edge's own local provider starts the real agent binary.
  served = await startTestEdge();
  nodeId = await served.provision({ timeoutMs: 15_000 });
}, 20_000);
afterAll(async () => {
  await served?.stop();
}, 15_000);

// The cookie holds a session, not the token; the bearer header is the pages' way in for scripts.
const page = (path: string) => fetch(`${served.url}${path}`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });

test("a node run by the real agent has its page: provider spans, charts and events from the agent", async () => {
  const res = await page(`/admin/nodes/${nodeId}`);
  expect(res.status).toBe(200);
  const html = await res.text();
  expect(html).toContain('data-kind="provider"');
  expect(html).toContain("→ agent ready");
  expect(html).not.toContain('id="unreachable"');
  expect(html).toContain('data-chart="cpu"');
  expect(html).toContain('id="events"');
  expect(html).toContain("agent.start");
}, 10_000);

test("both downloads deliver the real agent's SQLite databases, intact", async () => {
  // Opened from a file, as an operator would: the agent's snapshot may be in WAL mode, which needs a file.
  const dir = mkdtempSync(join(tmpdir(), "sam-admin-download-"));
  try {
    for (const kind of ["events", "metrics"]) {
      const res = await page(`/admin/nodes/${nodeId}/${kind}.db`);
      expect(res.status).toBe(200);
      expect(res.headers.get("Content-Type")).toBe("application/vnd.sqlite3");
      expect(res.headers.get("Content-Disposition")).toContain("attachment");
      const path = join(dir, `${kind}.db`);
      writeFileSync(path, new Uint8Array(await res.arrayBuffer()));
      const db = new Database(path);
      expect(db.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
      expect((db.query("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number }).n)
        .toBeGreaterThan(0);
      db.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 10_000);
