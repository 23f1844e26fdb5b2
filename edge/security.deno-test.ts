// Secrets at rest, limits and sessions, as a user meets them: edge/main.ts under Deno on a loopback port,
// the local provider running the real agent binary, and raw TCP where a client misbehaves.
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { until } from "../shared/testing/until.ts";
import { readUntil } from "../shared/testing/read-until.ts";

const root = new URL("..", import.meta.url).pathname;

type Edge = { url: string; admin: string; dataDir: string; child: Deno.ChildProcess; stop(): Promise<void> };

async function startEdge(env: Record<string, string> = {}, dataDir?: string): Promise<Edge> {
  const dir = dataDir ?? await Deno.makeTempDir({ prefix: "sam-security-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "edge/main.ts"],
    cwd: root,
    env: { SAM_PORT: "0", SAM_DATA_DIR: dir, ...env },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const m = await readUntil(child.stdout, /listening on (http:\/\/[\d.]+:\d+)[\s\S]*admin token: (samadm_\w+)/, 30_000);
  void child.stdout.cancel().catch(() => {});
  return {
    url: m[1]!,
    admin: m[2]!,
    dataDir: dir,
    child,
    async stop() {
      child.kill("SIGINT");
      await child.status;
    },
  };
}

function call(
  e: Edge,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  return fetch(`${e.url}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${opts.token ?? e.admin}`,
      ...(opts.body === undefined ? {} : { "Content-Type": "application/json" }),
      ...opts.headers,
    },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
}

async function createKey(e: Edge, name: string, rateLimitPerMinute: number | null = null): Promise<string> {
  const res = await call(e, "POST", "/api/keys", { body: { name, rateLimitPerMinute } });
  assert.equal(res.status, 201);
  return (await res.json()).key;
}

const mode = async (path: string) => (await Deno.stat(path)).mode! & 0o777;

/** Every row of every table of the database, as text: what a stolen copy of the database would show. */
async function dumpDatabase(path: string): Promise<string> {
  const db = createClient({ url: `file:${path}` });
  try {
    const tables = await db.execute("SELECT name FROM sqlite_master WHERE type = 'table'");
    let out = "";
    for (const t of tables.rows) out += JSON.stringify((await db.execute(`SELECT * FROM "${String(t.name)}"`)).rows);
    return out;
  } finally {
    db.close();
  }
}

/** The raw bytes of the database and its WAL, as Latin-1 text: old page versions included. */
async function rawDatabaseBytes(dir: string): Promise<string> {
  let out = "";
  for (const f of ["sam.db", "sam.db-wal"]) {
    const bytes = await Deno.readFile(`${dir}/${f}`).catch(() => new Uint8Array());
    out += new TextDecoder("latin1").decode(bytes);
  }
  return out;
}

async function gitRepo(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "sam-security-repo-" });
  const git = (...args: string[]) =>
    new Deno.Command("git", {
      args,
      cwd: dir,
      env: { GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t" },
    }).output();
  await git("init", "-q", "-b", "main");
  await Deno.writeTextFile(`${dir}/hello.txt`, "hello\n");
  await git("add", ".");
  await git("commit", "-q", "-m", "init");
  return dir;
}

Deno.test("secrets at rest: private files, no token or key in the database, the credential gone when its task ends", async () => {
  const e = await startEdge();
  try {
    for (
      const [path, want] of [["", 0o700], ["/sam.db", 0o600], ["/sam.db-wal", 0o600], ["/sam.db-shm", 0o600], [
        "/admin-token",
        0o600,
      ], ["/secret-key", 0o600]] as const
    ) {
      assert.equal(await mode(`${e.dataDir}${path}`), want, `mode of data dir${path}`);
    }
    const key = await createKey(e, "alice");
    const repo = await gitRepo();
    const credential = "cred_0f8e7d6c5b4a39281706f5e4d3c2b1a0";
    // The task prints its inference token base64-encoded, so the plain token is in the test's hands but not
    // in the task's log (which the database keeps).
    const submitted = await call(e, "POST", "/api/tasks", {
      token: key,
      body: {
        prompt: "p",
        repo: { url: repo, credential },
        agent: { type: "command", command: "printenv OPENAI_API_KEY | base64 -w0" },
      },
    });
    assert.equal(submitted.status, 201);
    const task = await submitted.json();
    assert.equal(JSON.stringify(task).includes(credential), false);

    const running = await until("the task to run", async () => {
      const row = await dumpDatabase(`${e.dataDir}/sam.db`);
      return row.includes('"status":"running"') || row.includes('"status":"succeeded"') ? true : undefined;
    });
    assert.ok(running);
    const done = await until("the task to end", async () => {
      const v = await (await call(e, "GET", `/api/tasks/${task.id}`)).json();
      return ["succeeded", "failed", "cancelled"].includes(v.status) ? v : undefined;
    });
    assert.equal(done.status, "succeeded", JSON.stringify(done));
    const events = await (await call(e, "GET", `/api/tasks/${task.id}/events`)).json();
    const printed = events.data.find((ev: { stream?: string; message: string }) => ev.stream === "stdout")!.message
      .trim();
    const taskToken = atob(printed);
    assert.match(taskToken, /^samtask_/);

    const nodeDir = `${e.dataDir}/nodes/${done.nodeId}`;
    const tokens = Object.fromEntries(
      (await Deno.readTextFile(`${nodeDir}/tokens`)).trim().split("\n").map((l) => l.split("=", 2) as [string, string]),
    );
    const secrets = {
      admin: e.admin,
      apiKey: key,
      node: tokens.SAM_NODE_TOKEN!,
      agent: tokens.SAM_AGENT_TOKEN!,
      task: taskToken,
      credential,
    };
    for (const [name, value] of Object.entries(secrets)) {
      assert.ok(value && value.length >= 20, `${name} secret known to the test`);
    }

    const dump = await dumpDatabase(`${e.dataDir}/sam.db`);
    const raw = await rawDatabaseBytes(e.dataDir);
    for (const [name, value] of Object.entries(secrets)) {
      assert.equal(dump.includes(value), false, `the ${name} secret is in a table of sam.db`);
      assert.equal(raw.includes(value), false, `the ${name} secret is in the bytes of sam.db or its WAL`);
    }
    const db = createClient({ url: `file:${e.dataDir}/sam.db` });
    const row = (await db.execute({ sql: "SELECT repo_credential FROM tasks WHERE id = ?", args: [task.id] })).rows[0]!;
    db.close();
    assert.equal(row.repo_credential, null);

    for (
      const [path, want] of [["", 0o700], ["/sam.db", 0o600], ["/sam.db-wal", 0o600], ["/sam.db-shm", 0o600]] as const
    ) {
      assert.equal(await mode(`${e.dataDir}${path}`), want, `mode of data dir${path} after a task`);
    }
    await Deno.remove(repo, { recursive: true });
  } finally {
    await e.stop();
  }
  // Started again with another key, the edge refuses: the secrets it sealed would not open.
  const wrong = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "edge/main.ts"],
    cwd: root,
    env: { SAM_PORT: "0", SAM_DATA_DIR: e.dataDir, SAM_SECRET_KEY: "ab".repeat(32) },
    stdout: "null",
    stderr: "piped",
  });
  const out = await wrong.output();
  assert.equal(out.code, 1);
  assert.match(new TextDecoder().decode(out.stderr), /SAM_SECRET_KEY is not the key/);
  await Deno.remove(e.dataDir, { recursive: true });
});

Deno.test("on Deno Deploy the edge does not start without SAM_SECRET_KEY", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "edge/main.ts"],
    cwd: root,
    env: {
      SAM_PORT: "0",
      DENO_DEPLOYMENT_ID: "test",
      SAM_DATABASE_URL: "http://127.0.0.1:9",
      SAM_ADMIN_TOKEN: "admin-token-for-the-deploy-check-01",
      HCLOUD_TOKEN: "t",
      SAM_PUBLIC_URL: "https://sam.example.com",
      SAM_AGENT_DOWNLOAD_URL: "https://d.example.com/a",
      SAM_AGENT_SHA256: "c".repeat(64),
    },
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  assert.match(
    new TextDecoder().decode(out.stderr),
    /^sam: configuration error: SAM_SECRET_KEY: required under the deploy profile/,
  );
});

Deno.test("limits: task submissions per key, task API requests per key, SSE follows per key and per edge; repo.url userinfo is a 400", async () => {
  const e = await startEdge({ SAM_API_READ_RPM: "40", SAM_SSE_MAX_PER_KEY: "2", SAM_SSE_MAX: "3" });
  const follows: AbortController[] = [];
  const held: string[] = [];
  try {
    const limited = await createKey(e, "limited", 2);
    const hold = { prompt: "p", agent: { type: "command", command: "sleep 60" } };
    const first = await (await call(e, "POST", "/api/tasks", { token: limited, body: hold })).json();
    const second = await call(e, "POST", "/api/tasks", { token: limited, body: hold });
    assert.equal(second.status, 201);
    held.push(first.id, (await second.json()).id);
    const refused = await call(e, "POST", "/api/tasks", { token: limited, body: hold });
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
    assert.equal((await refused.json()).error.code, "rate_limit_exceeded");

    const userinfo = await call(e, "POST", "/api/tasks", {
      token: await createKey(e, "bob"),
      body: { prompt: "p", repo: { url: "http://bob:secret@host/x.git" } },
    });
    assert.equal(userinfo.status, 400);
    const err = (await userinfo.json()).error;
    assert.match(err.message, /^repo\.url: .*repo\.credential/);
    assert.equal(err.message.includes("secret"), false);

    // Follows: two per key, three per edge; the admin counts against the edge's cap only.
    const open = async (token: string) => {
      const ctl = new AbortController();
      const res = await fetch(`${e.url}/api/tasks/${first.id}/events?follow=1`, {
        headers: { Authorization: `Bearer ${token}` },
        signal: ctl.signal,
      });
      if (res.status === 200) follows.push(ctl);
      return res;
    };
    assert.equal((await open(limited)).status, 200);
    assert.equal((await open(limited)).status, 200);
    const perKey = await open(limited);
    assert.equal(perKey.status, 429);
    assert.ok(Number(perKey.headers.get("retry-after")) >= 1);
    assert.equal((await perKey.json()).error.code, "too_many_follows");
    assert.equal((await open(e.admin)).status, 200);
    const total = await open(e.admin);
    assert.equal(total.status, 429);
    assert.match((await total.json()).error.message, /live event streams/);
    // A follow that ends gives its slot back.
    follows.shift()!.abort();
    await until("a freed follow slot", async () => {
      const res = await open(limited);
      if (res.status !== 200) await res.body?.cancel();
      return res.status === 200 ? true : undefined;
    });

    // Other task API requests of a key: SAM_API_READ_RPM per minute (the follows above counted too).
    let status = 200;
    for (let i = 0; i < 60 && status !== 429; i++) {
      const res = await call(e, "GET", `/api/tasks/${first.id}`, { token: limited });
      status = res.status;
      await res.body?.cancel();
    }
    assert.equal(status, 429);
  } finally {
    for (const f of follows) f.abort();
    // Ended tasks end their event streams, so the edge's graceful shutdown has nothing to wait for.
    for (const id of held) await (await call(e, "POST", `/api/tasks/${id}/cancel`)).body?.cancel();
    await e.stop();
    await Deno.remove(e.dataDir, { recursive: true });
  }
});

Deno.test("a client that does not send its announced body in time is answered 408 and its request dropped", async () => {
  const e = await startEdge({ SAM_CLIENT_BODY_TIMEOUT: "1s" });
  try {
    const key = await createKey(e, "slow");
    const { hostname, port } = new URL(e.url);
    const conn = await Deno.connect({ hostname, port: Number(port) });
    const started = Date.now();
    await conn.write(new TextEncoder().encode(
      `POST /api/tasks HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"prompt":`,
    ));
    // Deno.serve answers but keeps the socket until the client goes (docs/security.md § Slow clients), so
    // read until the answer is complete rather than until the close.
    let text = "";
    const buf = new Uint8Array(4096);
    const giveUp = setTimeout(() => conn.close(), 15_000);
    try {
      while (!/"request_timeout"/.test(text)) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) break;
        text += new TextDecoder().decode(buf.subarray(0, n));
      }
    } finally {
      clearTimeout(giveUp);
    }
    const elapsed = Date.now() - started;
    assert.match(text, /^HTTP\/1\.1 408/);
    assert.match(text, /connection: close/i);
    assert.ok(elapsed >= 900 && elapsed < 10_000, `answered after ${elapsed} ms`);
    try {
      conn.close();
    } catch { /* closed on give-up */ }
    // No task was made of the half request.
    assert.deepEqual((await (await call(e, "GET", "/api/tasks")).json()).data, []);
  } finally {
    await e.stop();
    await Deno.remove(e.dataDir, { recursive: true });
  }
});

Deno.test("admin sessions: the cookie is not the admin token, logout and revocation make it useless, X-Forwarded-Proto is not trusted", async () => {
  const e = await startEdge();
  try {
    const login = async (headers: Record<string, string> = {}) => {
      const res = await fetch(`${e.url}/admin/login`, {
        method: "POST",
        redirect: "manual",
        headers: { "Content-Type": "application/x-www-form-urlencoded", ...headers },
        body: new URLSearchParams({ token: e.admin, next: "/admin/nodes" }),
      });
      assert.equal(res.status, 303);
      await res.body?.cancel();
      return res.headers.get("set-cookie")!;
    };
    const page = async (cookie: string) => {
      const res = await fetch(`${e.url}/admin/nodes`, { headers: { Cookie: cookie }, redirect: "manual" });
      await res.body?.cancel();
      return res.status;
    };
    const set = await login({ "X-Forwarded-Proto": "https" });
    assert.equal(set.includes(e.admin), false);
    assert.doesNotMatch(set, /Secure/);
    const cookie = set.split(";")[0]!;
    assert.equal(await page(cookie), 200);

    const logout = await fetch(`${e.url}/admin/logout`, {
      method: "POST",
      headers: { Cookie: cookie },
      redirect: "manual",
    });
    await logout.body?.cancel();
    assert.equal(await page(cookie), 401);

    const second = (await login()).split(";")[0]!;
    const listed = await (await call(e, "GET", "/api/sessions")).json();
    assert.equal(listed.data.length, 1);
    assert.equal(JSON.stringify(listed).includes(second.split("=")[1]!), false);
    assert.equal((await call(e, "DELETE", `/api/sessions/${listed.data[0].id}`)).status, 200);
    assert.equal(await page(second), 401);
    assert.equal((await call(e, "DELETE", `/api/sessions/${listed.data[0].id}`)).status, 404);
  } finally {
    await e.stop();
    await Deno.remove(e.dataDir, { recursive: true });
  }
});
