// The deploy profile for real: edge/main.ts under Deno with Deno Deploy's working permissions minus writes
// (--allow-net --allow-env --allow-read: any write to disk would throw), against a real sqld and the Hetzner
// API fake. A task goes end to end, its node played by the agent double started from the server's own
// cloud-init tokens. What the profile cannot run on stops the start with one line naming the variable.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { startHetznerFake } from "./testing/hetzner-fake.ts";
import { startSqld } from "./testing/sqld.ts";
import { until } from "../shared/testing/until.ts";
import { freePort } from "../shared/testing/free-port.ts";

const root = new URL("..", import.meta.url).pathname;
const ADMIN = "admin-token-for-the-deploy-test-0123";
const HCLOUD = "hcloud-deploy-test-token";
const SECRET_KEY = "a".repeat(64);

function deployEdge(env: Record<string, string>) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "--allow-read", "edge/main.ts"],
    cwd: root,
    // Nothing of the test runner's own environment decides the profile.
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "/tmp", SAM_PROFILE: "deploy", ...env },
    stdout: "piped",
    stderr: "piped",
  });
}

const hetznerEnv = (fakeUrl: string, publicUrl: string) => ({
  HCLOUD_TOKEN: HCLOUD,
  SAM_HCLOUD_API_BASE: fakeUrl,
  SAM_PUBLIC_URL: publicUrl,
  SAM_AGENT_DOWNLOAD_URL: "https://downloads.example.com/sam-agent-linux-x64",
  SAM_AGENT_SHA256: "c".repeat(64),
  SAM_HCLOUD_REQUEST_TIMEOUT: "2s",
});

Deno.test("deploy profile: a task runs end to end on sqld and the Hetzner fake, with no write permission", async () => {
  const sqld = await startSqld();
  const fake = await startHetznerFake({ token: HCLOUD, actionPolls: 1, runningPolls: 1 });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // A data dir that does not exist: under this profile nothing may create it.
  const dataDir = join(tmpdir(), `sam-deploy-never-${port}`);
  const edge = deployEdge({
    ...hetznerEnv(fake.url, url),
    SAM_PORT: String(port),
    SAM_DATABASE_URL: sqld.url,
    SAM_ADMIN_TOKEN: ADMIN,
    SAM_SECRET_KEY: SECRET_KEY,
    SAM_DATA_DIR: dataDir,
  }).spawn();
  const stderr = new Response(edge.stderr).text();
  const stdout = new Response(edge.stdout).text();
  const tokenDir = mkdtempSync(join(tmpdir(), "sam-deploy-agent-"));
  let agent: ReturnType<typeof spawn> | null = null;
  try {
    const admin = { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" };
    await until(
      "the edge listens",
      () => fetch(`${url}/healthz`).then((r) => (r.ok ? true : undefined), () => undefined),
      30_000,
    );
    const key = await (await fetch(`${url}/api/keys`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ name: "deploy" }),
    })).json();
    const asKey = { Authorization: `Bearer ${key.key}` };
    const submitTask = async (idempotencyKey: string, prompt: string, command: string) => {
      const res = await fetch(`${url}/api/tasks`, {
        method: "POST",
        headers: { ...asKey, "Content-Type": "application/json", "Idempotency-Key": idempotencyKey },
        body: JSON.stringify({ prompt, agent: { type: "command", command } }),
      });
      assert.equal(res.status, 201);
      return await res.json();
    };
    const ended = (what: string, id: string) =>
      until(what, async () => {
        const view = await (await fetch(`${url}/api/tasks/${id}`, { headers: asKey })).json();
        return view.status === "succeeded" || view.status === "failed" ? view : undefined;
      }, 30_000);
    const eventsOf = async (id: string) =>
      (await (await fetch(`${url}/api/tasks/${id}/events`, { headers: asKey })).json()).data;
    const task = await submitTask("deploy-first", "hello", "echo hello from deploy");

    // The VM cannot boot here: play its agent with the tokens its cloud-init carries.
    const server = await until("the server exists", async () => [...fake.servers.values()][0], 15_000);
    const files = parse(server.userData).write_files as { path: string; content: string }[];
    const tokens = files.find((f) => f.path === "/etc/sam/tokens")!.content;
    writeFileSync(join(tokenDir, "tokens"), tokens, { mode: 0o600 });
    agent = spawn(join(root, "node_modules", ".bin", "bun"), ["edge/testing/agent-double-main.ts"], {
      cwd: root,
      env: {
        ...Deno.env.toObject(),
        SAM_NODE_ID: server.labels["sam-node-id"]!,
        SAM_CONTROL_PLANE_URL: url,
        SAM_TOKEN_FILE: join(tokenDir, "tokens"),
      },
      stdio: "ignore",
    });

    const done = await ended("the task ends", task.id);
    assert.equal(done.status, "succeeded");
    assert.ok((await eventsOf(task.id)).some((e: { message: string }) => e.message === "hello from deploy"));

    // The node is ready and has a free slot: the next submission is inserted already dispatched (one
    // statement on sqld, its node read back in RETURNING), and still shows that it was queued first.
    const second = await submitTask("deploy-second", "again", "echo second");
    assert.equal(second.status, "dispatched");
    assert.equal(second.nodeId, done.nodeId);
    assert.equal((await ended("the second task ends", second.id)).status, "succeeded");
    assert.deepEqual(
      (await eventsOf(second.id)).filter((e: { type: string }) => e.type === "status").map((e: { status: string }) =>
        e.status
      ),
      ["queued", "dispatched", "running", "succeeded"],
    );
    assert.equal(await Deno.stat(dataDir).then(() => true, () => false), false);
  } finally {
    edge.kill("SIGINT");
    const status = await edge.status;
    agent?.kill("SIGTERM");
    await fake.close();
    await sqld.stop();
    rmSync(tokenDir, { recursive: true, force: true });
    const err = await stderr;
    assert.equal(status.code, 0, err);
    assert.doesNotMatch(err, /PermissionDenied|NotCapable|Requires write access/);
    assert.match(await stdout, /listening on http:\/\/127\.0\.0\.1:\d+ \(deploy profile\)/);
  }
});

for (
  const [what, env, pattern] of [
    [
      "a file: database",
      { SAM_DATABASE_URL: "file:/tmp/sam-deploy.db" },
      /^sam: configuration error: SAM_DATABASE_URL: the deploy profile needs a shared database/,
    ],
    [
      "the local provider",
      { SAM_PROVIDER: "local", HCLOUD_TOKEN: "" },
      /^sam: configuration error: SAM_PROVIDER: the deploy profile cannot run local nodes/,
    ],
    [
      "a missing admin token",
      { SAM_ADMIN_TOKEN: "" },
      /^sam: configuration error: SAM_ADMIN_TOKEN: required under the deploy profile/,
    ],
    [
      "a missing secret key",
      { SAM_SECRET_KEY: "" },
      /^sam: configuration error: SAM_SECRET_KEY: required under the deploy profile/,
    ],
  ] as const
) {
  Deno.test(`deploy profile: ${what} stops the start with one line`, async () => {
    const good = {
      ...hetznerEnv("http://127.0.0.1:9", "https://sam.example.com"),
      SAM_DATABASE_URL: "http://127.0.0.1:9",
      SAM_ADMIN_TOKEN: ADMIN,
      SAM_SECRET_KEY: SECRET_KEY,
    };
    const out = await deployEdge({ ...good, ...env }).output();
    const stderr = new TextDecoder().decode(out.stderr).trim();
    assert.equal(out.code, 2, stderr);
    assert.equal(stderr.split("\n").length, 1, stderr);
    assert.match(stderr, pattern);
  });
}
