/**
 * The compiled `sam-agent` binary against a stub control plane (a small Bun.serve playing the edge):
 * ready with a boot timeline, heartbeats, events, both exports as valid SQLite files, graceful SIGTERM,
 * and the start failures (bad configuration, read-only or full data dir).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { AgentHeartbeat, AgentReady } from "../shared/wire/agent.ts";
import { SAM_VERSION } from "../shared/version.ts";
import { AGENT_BINARY, ensureAgentBinary, listeningUrl } from "./testing/binary.ts";
import { until } from "../shared/testing/until.ts";

const BINARY = AGENT_BINARY;
const JOURNAL = join(import.meta.dir, "boot", "testdata", "journal.json");
const NODE_TOKEN = "samnode_binary_test_0123456789";
const AGENT_TOKEN = "samagent_binary_test_0123456789";

const dirs: string[] = [];
const tempDir = (prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};

beforeAll(() => {
  // `npm test` builds through setup.mjs; a focused run rebuilds only when sources are newer than the binary.
  ensureAgentBinary();
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The edge's `/api/agent/*` as the protocol pins it; the first ready answer is a 503 to exercise the retry. */
function stubEdge() {
  const calls: { path: string; auth: string | null; body: unknown; at: number }[] = [];
  let readyAnswers = 0;
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const path = new URL(req.url).pathname;
      calls.push({ path, auth: req.headers.get("authorization"), body: await req.json(), at: Date.now() });
      if (req.headers.get("authorization") !== `Bearer ${NODE_TOKEN}`) {
        return Response.json({ error: { message: "bad token", type: "authentication_error", code: null } }, {
          status: 401,
        });
      }
      if (path === "/api/agent/ready" && readyAnswers++ === 0) {
        return Response.json({ error: { message: "edge warming up", type: "unavailable_error", code: null } }, {
          status: 503,
        });
      }
      return Response.json({ ok: true, cancel: [] });
    },
  });
  return { server, calls, url: `http://127.0.0.1:${server.port}` };
}

function tokenFile(dir: string): string {
  const f = join(dir, "tokens");
  writeFileSync(f, `SAM_NODE_TOKEN=${NODE_TOKEN}\nSAM_AGENT_TOKEN=${AGENT_TOKEN}\n`, { mode: 0o600 });
  return f;
}

/** Start the binary; resolves with its URL once it printed the listening line. */
async function spawnAgent(env: Record<string, string>, argv: string[] = []) {
  const proc = Bun.spawn([BINARY, ...argv], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const { url, out } = await listeningUrl(proc.stdout);
  if (!url) {
    proc.kill("SIGKILL");
    throw new Error(`agent did not start: ${out} ${await new Response(proc.stderr).text()}`);
  }
  return { proc, url };
}

const sqlite = (file: string, sql: string) =>
  Bun.spawnSync(["sqlite3", file, sql]).stdout.toString().trim().split("\n");

describe("the sam-agent binary", () => {
  test("reports ready with a boot timeline, heartbeats, records events, and exports valid databases", async () => {
    const dir = tempDir("sam-agent-bin-");
    const dataDir = join(dir, "data");
    const edge = stubEdge();
    const { proc, url } = await spawnAgent({
      SAM_NODE_ID: "node-bin",
      SAM_CONTROL_PLANE_URL: edge.url,
      SAM_TOKEN_FILE: tokenFile(dir),
      SAM_AGENT_DATA_DIR: dataDir,
      SAM_AGENT_HOST: "127.0.0.1",
      SAM_AGENT_PORT: "0",
      SAM_HEARTBEAT_INTERVAL: "200ms",
      SAM_METRICS_INTERVAL: "250ms",
      SAM_BOOT_JOURNAL_COMMAND: `cat ${JOURNAL}`,
    });
    try {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const auth = { Authorization: `Bearer ${AGENT_TOKEN}` };

      await until("two heartbeats", () => edge.calls.filter((c) => c.path === "/api/agent/heartbeat").length >= 2);
      expect(edge.calls.every((c) => c.auth === `Bearer ${NODE_TOKEN}`)).toBe(true);
      const readies = edge.calls.filter((c) => c.path === "/api/agent/ready");
      expect(readies.length).toBe(2); // the 503, then the accepted retry
      const ready = v.parse(AgentReady, readies[1]!.body);
      expect(ready).toMatchObject({ nodeId: "node-bin", version: SAM_VERSION, url, tlsFingerprint: null });
      expect(ready.bootTimeline.source).toBe("journald");
      expect(ready.bootTimeline.kernelUptimeMsAtAgentStart).toBeGreaterThan(0);
      expect(ready.bootTimeline.phases.map((p) => `${p.name}:${p.status}`)).toEqual([
        "docker:ok",
        "firewall:ok",
        "nodejs:ok",
        "base-image-pull:ok",
        "devcontainer-cli:failed",
        "tls:unterminated",
      ]);
      const beat = v.parse(AgentHeartbeat, edge.calls.find((c) => c.path === "/api/agent/heartbeat")!.body);
      expect(beat.metrics?.memTotalBytes).toBeGreaterThan(0);
      expect(beat.activeTasks).toEqual([]);

      const health = await (await fetch(`${url}/health`)).json();
      expect(health).toMatchObject({ ok: true, version: SAM_VERSION, nodeId: "node-bin" });
      expect(await (await fetch(`${url}/boot`, { headers: auth })).json()).toEqual(ready.bootTimeline);
      expect((await fetch(`${url}/events`)).status).toBe(401);

      const listed = await (await fetch(`${url}/events?limit=1000`, { headers: auth })).json();
      const seen = new Set(listed.data.map((e: { type: string }) => e.type));
      for (const t of ["agent.start", "boot.phase", "agent.ready.failed", "agent.ready.sent", "heartbeat.sent"]) {
        expect(seen.has(t)).toBe(true);
      }

      const metrics = await (await fetch(`${url}/metrics`, { headers: auth })).json();
      expect(metrics.samples.length).toBeGreaterThanOrEqual(1);

      for (const kind of ["events", "metrics"] as const) {
        const res = await fetch(`${url}/${kind}/export`, { headers: auth });
        expect(res.status).toBe(200);
        expect(res.headers.get("content-type")).toBe("application/vnd.sqlite3");
        expect(res.headers.get("content-disposition")).toMatch(
          new RegExp(`^attachment; filename="${kind}-node-bin-\\d{8}T\\d{6}Z\\.db"$`),
        );
        const bytes = new Uint8Array(await res.arrayBuffer());
        expect(Number(res.headers.get("content-length"))).toBe(bytes.length);
        const file = join(dir, `${kind}.db`);
        writeFileSync(file, bytes);
        expect(sqlite(file, "PRAGMA integrity_check")).toEqual(["ok"]);
        if (kind === "events") {
          expect(sqlite(file, "SELECT count(*) FROM events WHERE type = 'boot.phase'")).toEqual(["6"]);
          expect(Number(sqlite(file, "SELECT count(*) FROM events WHERE type = 'heartbeat.sent'")[0]))
            .toBeGreaterThanOrEqual(2);
          expect(sqlite(file, "SELECT DISTINCT node_id FROM events")).toEqual(["node-bin"]);
        } else {
          expect(Number(sqlite(file, "SELECT count(*) FROM samples WHERE mem_total_bytes > 0")[0]))
            .toBeGreaterThanOrEqual(1);
        }
      }
      expect(readdirSync(dataDir).filter((f) => f.startsWith(".export-"))).toEqual([]);

      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
      expect(sqlite(join(dataDir, "events.db"), "SELECT type FROM events ORDER BY id DESC LIMIT 1")).toEqual([
        "agent.stop",
      ]);
      expect(sqlite(join(dataDir, "events.db"), "PRAGMA integrity_check")).toEqual(["ok"]);
    } finally {
      proc.kill("SIGKILL");
      edge.server.stop(true);
    }
  }, 20_000);

  test(
    "an idle agent JIT-compiles nothing in the optimizing tier and loads the bytecode its build recorded",
    async () => {
      // docs/agent.md § Memory: a DFG compile pages in ≈ 2 MiB of compiler code for good; the bytecode an idle
      // agent uses is laid out from the build's record of an idle run (scripts/build-agent.ts).
      const dir = tempDir("sam-agent-bin-");
      const edge = stubEdge();
      const record = join(dir, "order.txt");
      const { proc, url } = await spawnAgent({
        SAM_NODE_ID: "node-idle",
        SAM_CONTROL_PLANE_URL: edge.url,
        SAM_TOKEN_FILE: tokenFile(dir),
        SAM_AGENT_DATA_DIR: join(dir, "data"),
        SAM_AGENT_HOST: "127.0.0.1",
        SAM_AGENT_PORT: "0",
        SAM_BOOT_SOURCE: "none",
        SAM_HEARTBEAT_INTERVAL: "100ms",
        SAM_METRICS_INTERVAL: "100ms",
        BUN_JSC_reportDFGCompileTimes: "1",
        BUN_BYTECODE_ORDER_OUT: record,
      });
      try {
        await until("ten heartbeats", () => edge.calls.filter((c) => c.path === "/api/agent/heartbeat").length >= 10);
        for (let i = 0; i < 20; i++) expect((await fetch(`${url}/health`)).status).toBe(200);
        proc.kill("SIGTERM");
        expect(await proc.exited).toBe(0);
        const dfg = (await new Response(proc.stderr).text()).split("\n").filter((l) => /with DFG|with FTL/.test(l));
        expect(dfg).toEqual([]);
        // The record's entries ("F <hash>" for a function, and other kinds): nearly all this run loaded must be
        // in the build's record (a run may take a path the build's did not, e.g. a heartbeat racing the stop).
        const entries = (text: string) => new Set(text.split("\n").filter((l) => /^[A-Z] [0-9a-f]{16}$/.test(l)));
        const built = entries(await Bun.file(join(import.meta.dir, "dist", "bytecode-order.txt")).text());
        const used = [...entries(await Bun.file(record).text())];
        expect(used.filter((e) => e.startsWith("F ")).length).toBeGreaterThan(100);
        expect(used.filter((e) => !built.has(e)).length).toBeLessThan(used.length * 0.05);
      } finally {
        proc.kill("SIGKILL");
        edge.server.stop(true);
      }
    },
    20_000,
  );

  test("a restart records a boot's phases once, keyed by the boot id, not by the host's clock", async () => {
    const dir = tempDir("sam-agent-bin-");
    // The same markers under another boot id: a rebooted machine whose journal kept the old boot's lines.
    const otherBoot = join(dir, "journal-other-boot.json");
    writeFileSync(otherBoot, readFileSync(JOURNAL, "utf8").replaceAll('"_BOOT_ID": "7c1f"', '"_BOOT_ID": "9a2e"'));
    const edge = stubEdge();
    const env = {
      SAM_NODE_ID: "node-re",
      SAM_CONTROL_PLANE_URL: edge.url,
      SAM_TOKEN_FILE: tokenFile(dir),
      SAM_AGENT_DATA_DIR: join(dir, "data"),
      SAM_AGENT_HOST: "127.0.0.1",
      SAM_AGENT_PORT: "0",
      SAM_HEARTBEAT_INTERVAL: "100ms",
    };
    const db = join(dir, "data", "events.db");
    const phases = () => sqlite(db, "SELECT count(*) FROM events WHERE type = 'boot.phase'")[0];
    try {
      // The fixture's timestamps predate this host's boot; they must not matter either way.
      for (
        const [journal, expected] of [[JOURNAL, "6"], [JOURNAL, "6"], [otherBoot, "12"], [otherBoot, "12"]] as const
      ) {
        const before = edge.calls.filter((c) => c.path === "/api/agent/heartbeat").length;
        const { proc } = await spawnAgent({ ...env, SAM_BOOT_JOURNAL_COMMAND: `cat ${journal}` });
        await until("a heartbeat", () => edge.calls.filter((c) => c.path === "/api/agent/heartbeat").length > before);
        proc.kill("SIGTERM");
        expect(await proc.exited).toBe(0);
        expect(phases()).toBe(expected);
      }
      expect(
        sqlite(db, "SELECT DISTINCT json_extract(detail, '$.bootId') FROM events WHERE type = 'boot.phase' ORDER BY 1"),
      ).toEqual(["7c1f", "9a2e"]);
      expect(sqlite(db, "SELECT count(*) FROM events WHERE type = 'agent.stop'")).toEqual(["4"]);
      const ready = edge.calls.filter((c) => c.path === "/api/agent/ready").at(-1)!.body as {
        bootTimeline: { bootId: string };
      };
      expect(ready.bootTimeline.bootId).toBe("9a2e");
    } finally {
      edge.server.stop(true);
    }
  }, 30_000);

  test(
    "owner-only data dir and databases (also correcting an older agent's modes), the sandbox in its capabilities, and every bad credential a JSON 401",
    async () => {
      const dir = tempDir("sam-agent-modes-");
      const dataDir = join(dir, "data");
      mkdirSync(dataDir, { mode: 0o755 });
      chmodSync(dataDir, 0o755);
      writeFileSync(join(dataDir, "metrics.db"), "", { mode: 0o644 }); // what an older agent left
      const edge = stubEdge();
      const { proc, url } = await spawnAgent({
        SAM_NODE_ID: "node-modes",
        SAM_CONTROL_PLANE_URL: edge.url,
        SAM_TOKEN_FILE: tokenFile(dir),
        SAM_AGENT_DATA_DIR: dataDir,
        SAM_AGENT_HOST: "127.0.0.1",
        SAM_AGENT_PORT: "0",
        SAM_HEARTBEAT_INTERVAL: "200ms",
        SAM_BOOT_SOURCE: "none",
      });
      try {
        const ready = v.parse(
          AgentReady,
          (await until("ready", () => edge.calls.filter((c) => c.path === "/api/agent/ready")[1]))!.body,
        );
        expect(ready.capabilities.sandbox).toBe("bubblewrap");
        const mode = (f: string) => (statSync(join(dataDir, f)).mode & 0o777).toString(8);
        expect(mode(".")).toBe("700");
        const dbs = readdirSync(dataDir).filter((f) => /\.db(-wal|-shm)?$/.test(f)).sort();
        expect(dbs).toEqual(
          expect.arrayContaining(["events.db", "events.db-shm", "events.db-wal", "metrics.db", "metrics.db-wal"]),
        );
        for (const f of dbs) expect([f, mode(f)]).toEqual([f, "600"]);

        for (const header of ["Bearer", "Basic eDp5", `Bearer ${AGENT_TOKEN}x`, "bearer a b"]) {
          const res = await fetch(`${url}/events`, { headers: { Authorization: header } });
          expect(res.status).toBe(401);
          expect((await res.json()).error).toMatchObject({ type: "authentication_error", code: "invalid_credentials" });
        }
        // Past Bun's own 16 KiB parser limit: the binary lets it through to the agent, which answers in JSON.
        const big = await fetch(`${url}/health`, { headers: { "X-Big": "x".repeat(100_000) } });
        expect(big.status).toBe(431);
        expect((await big.json()).error).toMatchObject({ code: "headers_too_large" });
      } finally {
        proc.kill("SIGKILL");
        edge.server.stop(true);
      }
    },
    20_000,
  );

  test("without bwrap on PATH the agent says so at start and reports the sandbox unavailable", async () => {
    const dir = tempDir("sam-agent-nobwrap-");
    const bin = join(dir, "bin"); // util-linux's tools, but no bwrap
    mkdirSync(bin);
    for (const tool of ["prlimit", "setpriv"]) symlinkSync(Bun.which(tool)!, join(bin, tool));
    const edge = stubEdge();
    const proc = Bun.spawn([BINARY], {
      env: {
        PATH: bin,
        SAM_NODE_ID: "node-nobwrap",
        SAM_CONTROL_PLANE_URL: edge.url,
        SAM_TOKEN_FILE: tokenFile(dir),
        SAM_AGENT_DATA_DIR: join(dir, "data"),
        SAM_AGENT_HOST: "127.0.0.1",
        SAM_AGENT_PORT: "0",
        SAM_HEARTBEAT_INTERVAL: "200ms",
        SAM_BOOT_SOURCE: "none",
      },
      stdout: "ignore",
      stderr: "pipe",
    });
    try {
      const ready = v.parse(
        AgentReady,
        (await until("ready", () => edge.calls.filter((c) => c.path === "/api/agent/ready")[1]))!.body,
      );
      expect(ready.capabilities.sandbox).toBe("unavailable");
      proc.kill("SIGTERM");
      await proc.exited;
      expect(await new Response(proc.stderr).text()).toBe(
        "sam-agent: warning: host-mode tasks run in a bubblewrap sandbox, and this node lacks 'bwrap': install the Debian/Ubuntu package " +
          "'bubblewrap' on the node, or set SAM_TASK_SANDBOX=off to run tasks without a sandbox (unsafe: a task can then read the node's tokens)\n",
      );
    } finally {
      proc.kill("SIGKILL");
      edge.server.stop(true);
    }
  }, 20_000);

  test(
    "a boot whose tls phase failed: the agent starts degraded on loopback and reports ready with the reason, no crash loop",
    async () => {
      const dir = tempDir("sam-agent-bin-");
      const edge = stubEdge();
      const env = {
        SAM_NODE_ID: "node-deg",
        SAM_CONTROL_PLANE_URL: edge.url,
        SAM_TOKEN_FILE: tokenFile(dir),
        SAM_AGENT_DATA_DIR: join(dir, "data"),
        SAM_AGENT_PORT: "0",
        SAM_BOOT_SOURCE: "none",
        SAM_HEARTBEAT_INTERVAL: "100ms",
        SAM_TLS_CERT: join(dir, "tls", "agent.crt"),
        SAM_TLS_KEY: join(dir, "tls", "agent.key"),
      };
      // Without the opt-in the missing certificate is still a configuration error (exit 2).
      const strict = Bun.spawnSync([BINARY], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env } });
      expect(strict.exitCode).toBe(2);
      const { proc, url } = await spawnAgent({ ...env, SAM_TLS_MISSING: "degrade" });
      try {
        expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
        const ready = await until(
          "the ready callback",
          () => edge.calls.filter((c) => c.path === "/api/agent/ready" && c.at > 0).at(1),
        );
        const body = v.parse(AgentReady, ready.body);
        expect(body.degraded).toContain(`no TLS certificate: '${env.SAM_TLS_CERT}' does not exist`);
        expect(body.url).toBe(url);
        await until("a heartbeat", () => edge.calls.some((c) => c.path === "/api/agent/heartbeat"));
      } finally {
        proc.kill("SIGKILL");
        edge.server.stop(true);
      }
    },
    20_000,
  );

  test("--version, --help, and a configuration error exits 2 with one line naming the variable", () => {
    expect(Bun.spawnSync([BINARY, "--version"]).stdout.toString().trim()).toBe(SAM_VERSION);
    expect(Bun.spawnSync([BINARY, "--help"]).stdout.toString()).toContain("--control-plane-url");
    const bad = Bun.spawnSync([
      BINARY,
      "--node-id",
      "n1",
      "--control-plane-url",
      "http://127.0.0.1:1",
      "--token-file",
      "/nonexistent",
    ], { env: {} });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.toString()).toBe(
      "sam-agent: configuration error: SAM_TOKEN_FILE: cannot read '/nonexistent' (ENOENT)\n",
    );
    const flag = Bun.spawnSync([BINARY, "--agent-prot", "1"], { env: {} });
    expect(flag.exitCode).toBe(2);
    expect(flag.stderr.toString()).toBe("sam-agent: configuration error: --agent-prot: unknown option; see --help\n");
  });

  // A private mount namespace gives a read-only or a full filesystem without touching the machine's mounts.
  const canMount =
    Bun.spawnSync(["unshare", "-m", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", tmpdir()], { stderr: "ignore" })
      .exitCode === 0;
  test.skipIf(!canMount).each([
    ["read-only", "ro,size=1m", "true", /^sam-agent: cannot start: data dir '.*' is on a read-only file system\n$/],
    [
      "full",
      "size=64k",
      "dd if=/dev/zero of=$D/fill bs=4k 2>/dev/null || true",
      /^sam-agent: cannot start: data dir '.*' has no space left\n$/,
    ],
  ])("a %s data dir stops the start with exit 1 and one clear line, no hang", (_, options, fill, message) => {
    const dir = tempDir("sam-agent-bin-");
    const dataDir = join(dir, "data");
    const script = `set -e; D=${dataDir}; mkdir -p $D; mount -t tmpfs -o ${options} tmpfs $D; ${fill}; exec ${BINARY}`;
    const started = Date.now();
    const r = Bun.spawnSync(["unshare", "-m", "sh", "-c", script], {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        SAM_NODE_ID: "n1",
        SAM_CONTROL_PLANE_URL: "http://127.0.0.1:9",
        SAM_TOKEN_FILE: tokenFile(dir),
        SAM_AGENT_DATA_DIR: dataDir,
        SAM_AGENT_PORT: "0",
        SAM_AGENT_HOST: "127.0.0.1",
      },
      timeout: 10_000,
    });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(r.exitCode).toBe(1);
    expect(r.stderr.toString()).toMatch(message);
  }, 15_000);
});
