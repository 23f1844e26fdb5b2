import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadEdgeConfig } from "./config.ts";
import { createEdge, type Edge } from "./compose.ts";

let dir: string;
let edge: Edge;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sam-edge-"));
  edge = await createEdge(loadEdgeConfig({ SAM_DATA_DIR: dir }));
});
afterAll(async () => {
  await edge.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("edge app", () => {
  test("GET /healthz answers without credentials", async () => {
    const res = await edge.app.request("/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true });
  });

  test("a first start generates an admin token into the data dir, readable by the owner only", () => {
    expect(edge.admin.source).toBe("generated");
    expect(edge.admin.token).toMatch(/^samadm_[A-Za-z0-9]{40}$/);
    expect(statSync(join(dir, "admin-token")).mode & 0o777).toBe(0o600);
  });

  test("the database is a libSQL file under the data dir with migrations applied", async () => {
    const rows = await edge.db.execute("SELECT id FROM schema_migrations");
    expect(rows.rows.length).toBeGreaterThan(0);
    expect(statSync(join(dir, "sam.db")).isFile()).toBe(true);
  });

  test("/api/config needs the admin token and shows the derived timeouts", async () => {
    for (const auth of [undefined, "Bearer wrong-token-wrong-token", "Basic abc"]) {
      const res = await edge.app.request("/api/config", { headers: auth ? { Authorization: auth } : {} });
      expect([400, 401]).toContain(res.status);
      const body = await res.json();
      expect(body.error.type).toMatch(/error$/);
      expect(JSON.stringify(body)).not.toContain(edge.admin.token);
    }
    const res = await edge.app.request("/api/config", { headers: { Authorization: `Bearer ${edge.admin.token}` } });
    expect(res.status).toBe(200);
    const body = await res.json();
    const stuck = body.timeouts.find((t: { name: string }) => t.name === "stuckQueued");
    expect(stuck).toMatchObject({ value: "20m", source: "agentReady + buffer (or SAM_STUCK_QUEUED_TIMEOUT)" });
    // The per-request limits are in the same table, so no timer in SAM is out of sight.
    expect(body.timeouts.find((t: { name: string }) => t.name === "exportProxyHeaders")).toMatchObject({
      value: "10s",
    });
  });

  test("unknown routes answer the JSON error shape", async () => {
    const res = await edge.app.request("/nope");
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: { message: "no route for GET /nope", type: "not_found_error", code: "route_not_found" },
    });
  });
});
