// The Deno path is real: start edge/main.ts under Deno, talk HTTP to it, stop it with SIGINT.
import assert from "node:assert/strict";
import { readUntil } from "../shared/testing/read-until.ts";

const root = new URL("..", import.meta.url).pathname;

function startEdge(env: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "edge/main.ts"],
    cwd: root,
    env: { SAM_PORT: "0", ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return child;
}

Deno.test("the edge starts under Deno, answers /healthz and stops cleanly on SIGINT", async () => {
  const dataDir = await Deno.makeTempDir();
  const child = startEdge({ SAM_DATA_DIR: dataDir });
  const m = await readUntil(child.stdout, /listening on (http:\/\/[\d.]+:\d+)[\s\S]*admin token: (samadm_\w+)/, 20_000);
  const url = m[1]!;
  const token = m[2]!;

  const health = await fetch(`${url}/healthz`);
  assert.equal(health.status, 200);
  assert.equal((await health.json()).ok, true);

  const denied = await fetch(`${url}/api/config`);
  assert.equal(denied.status, 401);
  assert.equal((await denied.json()).error.type, "authentication_error");
  const config = await fetch(`${url}/api/config`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(config.status, 200);
  assert.equal((await config.json()).provider, "local");

  child.kill("SIGINT");
  const status = await child.status;
  assert.equal(status.code, 0);
  await child.stderr.cancel();
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("a bad configuration stops the start with one line naming the variable", async () => {
  const child = startEdge({ SAM_DATABASE_URL: "mysql://db" });
  const out = await child.output();
  assert.equal(out.code, 2);
  const stderr = new TextDecoder().decode(out.stderr).trim();
  assert.equal(stderr.split("\n").length, 1);
  assert.match(stderr, /^sam: configuration error: SAM_DATABASE_URL: /);
});
