// The contract test: the edge's real code path (a task → the runner → the Hetzner provider → HTTP) against
// Prism serving Hetzner's own published description (testdata/, trimmed to the operations SAM calls).
// Prism rejects every request the description does not allow (422/401/404) and answers from its examples
// and schemas, so a request SAM shapes wrongly, or an answer shape SAM cannot read, fails here. Prism is
// stateless: what is checked is that every request was valid and that the flow completes — a task creates
// a server and waits for it, the tick's reaper lists SAM's servers, deleting the node deletes the server.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { until } from "../../../shared/testing/until.ts";
import { startTestEdge, type TestEdge } from "../../testing/test-edge.ts";
import { freePort } from "../../../shared/testing/free-port.ts";

const SPEC = new URL("./testdata/hetzner-cloud.trimmed.spec.json", import.meta.url).pathname;
const ROOT = new URL("../../../", import.meta.url).pathname;
const TOKEN = "contract-test-token";

type Seen = { method: string; path: string; status: number };
const seen: Seen[] = [];

let prism: ReturnType<typeof Bun.spawn>;
let proxy: ReturnType<typeof Bun.serve>;
let t: TestEdge;

beforeAll(async () => {
  const port = await freePort();
  prism = Bun.spawn([`${ROOT}node_modules/.bin/prism`, "mock", "-h", "127.0.0.1", "-p", String(port), SPEC], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const prismUrl = `http://127.0.0.1:${port}`;
  await until("prism serves the description", async () => {
    try {
      return (await fetch(`${prismUrl}/servers/1`, { headers: { Authorization: `Bearer ${TOKEN}` } })).status === 200;
    } catch {
      return false;
    }
  }, 60_000);
  // A recording pass-through: what SAM sent and what Prism made of it.
  proxy = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const u = new URL(req.url);
      const res = await fetch(`${prismUrl}${u.pathname}${u.search}`, {
        method: req.method,
        headers: req.headers,
        body: req.body,
      });
      seen.push({ method: req.method, path: u.pathname, status: res.status });
      return res;
    },
  });
  t = await startTestEdge({
    env: {
      HCLOUD_TOKEN: TOKEN,
      SAM_HCLOUD_API_BASE: `http://127.0.0.1:${proxy.port}`,
      SAM_PUBLIC_URL: "https://sam.example.com",
      SAM_AGENT_DOWNLOAD_URL: "https://downloads.example.com/sam-agent-linux-x64",
      SAM_AGENT_SHA256: "d".repeat(64),
      SAM_RETRY_BACKOFF: "100ms",
    },
  });
}, 90_000);

afterAll(async () => {
  await t?.stop();
  proxy?.stop(true);
  prism?.kill();
  await prism?.exited;
});

describe("the hetzner provider against Hetzner's published API description (Prism)", () => {
  test(
    "a task creates a server and waits for it; the reaper lists; deleting the node deletes the server — every request valid",
    async () => {
      const key = await t.createKey("contract");
      const submit = await t.call("POST", "/api/tasks", {
        token: key.key,
        body: { prompt: "hello", agent: { type: "command", command: "true" } },
      });
      expect(submit.status).toBe(201);
      const task = await submit.json();

      const node = await until("the node's server is running", async () => {
        const list = (await (await t.call("GET", "/api/nodes")).json()).data as {
          id: string;
          status: string;
          providerServerId: string | null;
          ipv4: string | null;
          providerTimings: { name: string }[];
        }[];
        return list.find((n) => n.status === "booting" && n.providerTimings.some((p) => p.name === "server_running"));
      }, 30_000);
      // The description's example server.
      expect(node.providerServerId).toBe("42");
      expect(node.ipv4).toBe("1.2.3.4");
      const view = await (await t.call("GET", `/api/tasks/${task.id}`, { token: key.key })).json();
      expect(view.status).toBe("waiting_for_agent");

      await t.edge.tick();
      await t.edge.runner.idle();
      // The description's example servers carry no `sam-node` label: nothing of SAM's to reap.
      expect(t.edge.runner.orphans).toMatchObject({ passes: 1, deleted: 0 });

      expect((await t.call("DELETE", `/api/nodes/${node.id}`)).status).toBeLessThan(300);
      await until(
        "the server delete went out",
        () => seen.some((s) => s.method === "DELETE" && s.path === "/servers/42"),
        15_000,
      );

      const calls = seen.map((s) => `${s.method} ${s.path.replace(/\/\d+$/, "/{id}")} ${s.status}`);
      expect(calls).toEqual(
        expect.arrayContaining([
          "POST /servers 201",
          "GET /servers/{id} 200",
          "GET /servers 200",
          "DELETE /servers/{id} 200",
        ]),
      );
      expect(seen.filter((s) => s.status >= 400)).toEqual([]);
    },
    60_000,
  );
});
