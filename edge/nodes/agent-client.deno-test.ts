// The edge's calls to an https agent under Deno (the production runtime): trusted is exactly the certificate
// on record for the node — an HttpClient with it as the only added CA — over real TLS (Deno.serve).
import assert from "node:assert/strict";
import { AgentClient, AgentUnreachable } from "./agent-client.ts";
import { denoPinnedTls } from "./pinned-fetch.ts";
import { selfSignedCertificateArgs } from "../testing/certificate-recipe.ts";

async function certificate(name: string): Promise<{ cert: string; key: string }> {
  const dir = await Deno.makeTempDir({ prefix: "sam-tls-" });
  const out = await new Deno.Command("openssl", {
    args: selfSignedCertificateArgs(name, { key: `${dir}/k.pem`, cert: `${dir}/c.pem` }),
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const pair = { cert: await Deno.readTextFile(`${dir}/c.pem`), key: await Deno.readTextFile(`${dir}/k.pem`) };
  await Deno.remove(dir, { recursive: true });
  return pair;
}

Deno.test("an https agent is called trusting only the certificate it reported", async () => {
  const served = await certificate("sam-node-a");
  const other = await certificate("sam-node-b");
  const seen: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert: served.cert, key: served.key, onListen() {} },
    (req) => {
      seen.push(new URL(req.url).pathname);
      return Response.json({ auth: req.headers.get("authorization") });
    },
  );
  try {
    const agentUrl = `https://127.0.0.1:${server.addr.port}`;
    const node = { id: "n1", agentUrl, agentToken: "samagent_x", status: "ready" as const };
    const client = new AgentClient(undefined, null, denoPinnedTls(Deno.createHttpClient));

    const ok = await client.call({ ...node, agentTlsCert: served.cert }, "/events", { timeoutMs: 5_000 });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { auth: "Bearer samagent_x" });
    // The same client again (cached per certificate), and a second node's certificate beside it.
    assert.equal(
      (await client.call({ ...node, agentTlsCert: served.cert }, "/boot", { timeoutMs: 5_000 })).status,
      200,
    );

    const refused = await client.call({ ...node, agentTlsCert: other.cert }, "/events", { timeoutMs: 5_000 }).catch((
      e,
    ) => e);
    assert.ok(refused instanceof AgentUnreachable);
    assert.match(
      refused.message,
      /^the agent's TLS certificate is not the one it reported \(.*(UnknownIssuer|certificate).*\)$/,
    );

    const none = await client.call({ ...node, agentTlsCert: null }, "/events", { timeoutMs: 5_000 }).catch((e) => e);
    assert.ok(none instanceof AgentUnreachable);
    assert.equal(none.message, "node n1 serves https but reported no certificate");
    assert.deepEqual(seen, ["/events", "/boot"]);
  } finally {
    await server.shutdown();
  }
});
