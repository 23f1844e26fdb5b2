// An https agent: the edge's calls trust exactly the certificate the agent reported in its ready callback
// (docs/protocol.md § TLS), over real TLS with certificates made by openssl as cloud-init makes them.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { AGENT_BINARY, ensureAgentBinary } from "../../agent/testing/binary.ts";
import { LocalProvider } from "../providers/local/local.ts";
import { NodeView } from "../../shared/wire/api.ts";
import { until } from "../../shared/testing/until.ts";
import { ProviderDouble } from "../testing/provider-double.ts";
import { startTestEdge, type TestEdge } from "../testing/test-edge.ts";
import { selfSignedCertificate } from "../testing/tls.ts";

const served = selfSignedCertificate("sam-node-a");
const other = selfSignedCertificate("sam-node-b");
const edges: TestEdge[] = [];
afterAll(async () => {
  for (const t of edges) await t.stop();
  served.remove();
  other.remove();
});

async function edgeWith(report: { tlsCertificate?: string | null; tlsFingerprint?: string | null }, autoReady = true) {
  const provider = new ProviderDouble({ autoReady, double: { tls: { cert: served.cert, key: served.key, report } } });
  const t = await startTestEdge({ provider });
  edges.push(t);
  const res = await t.call("POST", "/api/nodes", { body: {} });
  expect(res.status).toBe(201);
  const id = v.parse(NodeView, await res.json()).id;
  return { t, provider, id };
}

const status = async (t: TestEdge, id: string) => (await (await t.call("GET", `/api/nodes/${id}`)).json()).status;

describe("an https agent", () => {
  test("is called over TLS trusting the certificate it reported: proxied events, an export, a task", async () => {
    const { t, provider, id } = await edgeWith({ tlsFingerprint: served.fingerprint });
    await until("ready", async () => (await status(t, id)) === "ready");
    const node = v.parse(NodeView, await (await t.call("GET", `/api/nodes/${id}`)).json());
    expect(node.agentUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);

    const events = await t.call("GET", `/api/nodes/${id}/events?type=agent.start`);
    expect(events.status).toBe(200);
    expect((await events.json()).data[0].type).toBe("agent.start");
    expect(provider.agents.get(id)!.eventQueries).toEqual(["?type=agent.start"]);
    const exported = await t.call("GET", `/api/nodes/${id}/events/export`);
    expect(exported.status).toBe(200);
    expect(new TextDecoder().decode((await exported.arrayBuffer()).slice(0, 15))).toBe("SQLite format 3");

    const key = await t.createKey();
    const task = await (await t.call("POST", "/api/tasks", {
      token: key.key,
      body: { prompt: "over tls", agent: { type: "command", command: "echo hi" } },
    })).json();
    await until(
      "task succeeded",
      async () =>
        (await (await t.call("GET", `/api/tasks/${task.id}`, { token: key.key })).json()).status === "succeeded",
      10_000,
    );
    expect(provider.agents.get(id)!.dispatches.map((d) => d.taskId)).toEqual([task.id]);
  }, 20_000);

  test(
    "serving another certificate than the one it reported: a 502 naming the certificate, no request reaches it",
    async () => {
      // The agent reports certificate B (consistently: B's fingerprint), but something else answers at its URL.
      const { t, provider, id } = await edgeWith({ tlsCertificate: other.cert, tlsFingerprint: other.fingerprint });
      await until("ready", async () => (await status(t, id)) === "ready");
      const res = await t.call("GET", `/api/nodes/${id}/events`);
      expect(res.status).toBe(502);
      const body = await res.json();
      expect(body.error.type).toBe("upstream_error");
      expect(body.error.message).toContain("TLS certificate is not the one it reported");
      expect(provider.agents.get(id)!.eventQueries).toEqual([]);
    },
    20_000,
  );

  test(
    "a ready callback without the certificate, or with another certificate's fingerprint, is a 400 and the node stays unready",
    async () => {
      const missing = await edgeWith({ tlsCertificate: null }, false);
      await until("the double", async () => missing.provider.agents.get(missing.id));
      const noCert = await missing.provider.agents.get(missing.id)!.ready();
      expect(noCert.status).toBe(400);
      expect((await noCert.json()).error).toMatchObject({
        code: "tls_certificate_required",
        type: "invalid_request_error",
      });

      const wrong = await edgeWith({ tlsFingerprint: other.fingerprint }, false);
      await until("the double", async () => wrong.provider.agents.get(wrong.id));
      const mismatch = await wrong.provider.agents.get(wrong.id)!.ready();
      expect(mismatch.status).toBe(400);
      expect((await mismatch.json()).error.code).toBe("tls_fingerprint_mismatch");
      for (const { t, id } of [missing, wrong]) expect(await status(t, id)).not.toBe("ready");
    },
    20_000,
  );

  test("a certificate the edge's calls could never verify is refused at ready, saying why", async () => {
    const ca = selfSignedCertificate("sam-node-ca", { ca: true }); // what cloud-init made before: a CA
    const elsewhere = selfSignedCertificate("sam-node-x", { ip: "10.9.8.7" });
    try {
      const cases: [string, string, RegExp][] = [
        [ca.cert, "tls_certificate_invalid", /is a CA certificate/],
        [elsewhere.cert, "tls_certificate_invalid", /does not name 127\.0\.0\.1/],
        [
          "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
          "tls_certificate_invalid",
          /is not an X\.509 certificate/,
        ],
      ];
      for (const [tlsCertificate, code, message] of cases) {
        const e = await edgeWith({ tlsCertificate, tlsFingerprint: null }, false);
        await until("the double", async () => e.provider.agents.get(e.id));
        const res = await e.provider.agents.get(e.id)!.ready();
        expect(res.status).toBe(400);
        const { error } = await res.json();
        expect(error.code).toBe(code);
        expect(error.message).toMatch(message);
      }
    } finally {
      ca.remove();
      elsewhere.remove();
    }
  }, 20_000);

  test(
    "the real agent binary serving TLS: ready with its certificate, events proxied, a task run, all pinned",
    async () => {
      ensureAgentBinary();
      const provider = new LocalProvider({
        dataDir: mkdtempSync(join(tmpdir(), "sam-tls-nodes-")),
        command: [AGENT_BINARY],
        heartbeatIntervalMs: 1_000,
        env: { SAM_TLS_CERT: served.certPath, SAM_TLS_KEY: served.keyPath },
      });
      const t = await startTestEdge({ provider });
      edges.push(t);
      const id = v.parse(NodeView, await (await t.call("POST", "/api/nodes", { body: {} })).json()).id;
      await until("ready", async () => (await status(t, id)) === "ready", 15_000);
      expect(v.parse(NodeView, await (await t.call("GET", `/api/nodes/${id}`)).json()).agentUrl).toMatch(
        /^https:\/\/127\.0\.0\.1:\d+$/,
      );

      const events = await t.call("GET", `/api/nodes/${id}/events?type=agent.start`);
      expect(events.status).toBe(200);
      expect((await events.json()).data.map((e: { type: string }) => e.type)).toEqual(["agent.start"]);

      const key = await t.createKey();
      const task = await (await t.call("POST", "/api/tasks", {
        token: key.key,
        body: { prompt: "over tls", agent: { type: "command", command: "echo over-tls" } },
      })).json();
      await until(
        "task succeeded",
        async () =>
          (await (await t.call("GET", `/api/tasks/${task.id}`, { token: key.key })).json()).status === "succeeded",
        15_000,
      );
    },
    40_000,
  );
});
