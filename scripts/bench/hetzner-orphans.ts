/**
 * What a Hetzner project is left with: the real edge under Deno (edge/main.ts of `--edge-root`, e.g. an
 * extracted older commit with its own node_modules) against the spec-shaped Hetzner fake (this tree's),
 * for `--seconds` after one task is submitted, then every node deleted through the API. Prints the creates
 * (POST /servers answered 201), DELETEs, label-list GETs, and the servers left behind (billed orphans).
 * Scenario `today`: Hetzner as it answers since 2026-07. Scenario `faults`: also an orphan from before the
 * start, and a create whose 201 cannot be parsed.
 *   node_modules/.bin/bun scripts/bench/hetzner-orphans.ts [--edge-root=DIR] [--seconds=60] [--scenario=today|faults]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startHetznerFake } from "../../edge/testing/hetzner-fake.ts";

const opt = (name: string, fallback: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const root = join(import.meta.dir, "..", "..");
const edgeRoot = opt("edge-root", root);
const seconds = Number(opt("seconds", "60"));
const scenario = opt("scenario", "today");
const ADMIN = "admin-token-for-the-orphan-bench";
const TOKEN = "hcloud-bench-token";

const fake = await startHetznerFake({ token: TOKEN, actionPolls: 1, runningPolls: 1 });
if (scenario === "faults") {
  fake.addServer({
    labels: { "sam-node": "true", "sam-node-id": "n-lost" },
    created: new Date(Date.now() - 3_600_000).toISOString(),
  });
  fake.applyThenFailNextCreate({ brokenBody: true });
}
const dataDir = mkdtempSync(join(tmpdir(), "sam-bench-orphans-"));
const child = Bun.spawn([join(root, "node_modules", ".bin", "deno"), "run", "--allow-all", "edge/main.ts"], {
  cwd: edgeRoot,
  env: {
    ...process.env,
    SAM_PORT: "0",
    SAM_DATA_DIR: dataDir,
    SAM_ADMIN_TOKEN: ADMIN,
    HCLOUD_TOKEN: TOKEN,
    SAM_HCLOUD_API_BASE: fake.url,
    SAM_PUBLIC_URL: "https://sam.example.com",
    SAM_AGENT_DOWNLOAD_URL: "https://downloads.example.com/sam-agent",
    SAM_AGENT_SHA256: "f".repeat(64),
    SAM_TICK_INTERVAL: "1s",
    SAM_RETRY_BACKOFF: "100ms",
    SAM_ORPHAN_GRACE: "1m",
  },
  stdout: "pipe",
  stderr: "ignore",
});
let out = "";
const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
let url: string | undefined;
for (const deadline = Date.now() + 30_000; !url && Date.now() < deadline;) {
  const { value, done } = await reader.read();
  if (done) break;
  out += value;
  url = /listening on (http:\/\/[\d.]+:\d+)/.exec(out)?.[1];
}
if (!url) throw new Error(`the edge did not start: ${out}`);
void reader.read().then(function more(r): unknown {
  return r.done ? undefined : reader.read().then(more);
});

const api = (method: string, path: string, token = ADMIN, body?: unknown) =>
  fetch(`${url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
const key = await (await api("POST", "/api/keys", ADMIN, { name: "bench" })).json();
const task =
  await (await api("POST", "/api/tasks", key.key, { prompt: "hello", agent: { type: "command", command: "true" } }))
    .json();
await Bun.sleep(seconds * 1000);

// Cancel the task first, or deleting its node would put it back in the queue for a new one.
await (await api("POST", `/api/tasks/${task.id}/cancel`, key.key)).text();
const listNodes = async () => (await (await api("GET", "/api/nodes")).json()).data as { id: string; status: string }[];
const nodes = await listNodes();
for (const n of nodes) await (await api("DELETE", `/api/nodes/${n.id}`)).text();
await Bun.sleep(5_000);

const count = (method: string, path: RegExp, status?: number) =>
  fake.requests.filter((r) => r.method === method && path.test(r.path) && (status === undefined || r.status === status))
    .length;
console.log(`edge ${edgeRoot} · scenario ${scenario} · ${seconds} s + every node deleted:`);
console.log(`  POST /servers answered 201: ${count("POST", /^\/servers$/, 201)}`);
console.log(`  DELETE /servers/{id}: ${count("DELETE", /^\/servers\/\d+$/)}`);
console.log(`  GET /servers (label lists): ${count("GET", /^\/servers$/)}`);
console.log(
  `  nodes: ${nodes.length} before the deletes (${nodes.map((n) => n.status).join(", ")}), then ${
    (await listNodes()).length
  } not deleted`,
);
console.log(`  servers left in the project: ${fake.servers.size}`);
if (process.env.BENCH_TRACE) {
  for (const r of fake.requests) {
    if (!(r.method === "GET" && r.path === "/servers")) console.log(`    ${r.method} ${r.path} ${r.status}`);
  }
}

child.kill("SIGINT");
await child.exited;
await fake.close();
rmSync(dataDir, { recursive: true, force: true });
