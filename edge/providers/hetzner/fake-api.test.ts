// The Hetzner fake cannot drift from Hetzner's API again: every answer it gives (successes, each error it can
// inject, broken 201s excepted) is validated against the response schemas of the vendored description, its
// error codes against the description's table, and the requests the provider sends against the request
// schemas. The fake of before (datacenter, no location, 400 invalid_input…) fails here.
import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { type HetznerFake, startHetznerFake } from "../../testing/hetzner-fake.ts";
import { createHetznerProvider } from "./provider.ts";

const spec = (await Bun.file(new URL("./testdata/hetzner-cloud.trimmed.spec.json", import.meta.url)).json()) as {
  info: { description: string };
  paths: Record<
    string,
    Record<
      string,
      {
        requestBody?: { content: Record<string, { schema: object }> };
        responses: Record<string, { content?: Record<string, { schema: object }> }>;
      }
    >
  >;
};

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
for (const f of ["int32", "int64", "double"]) ajv.addFormat(f, true);

/** The spec's error table: code → HTTP status. */
const ERROR_TABLE = new Map(
  [...spec.info.description.matchAll(/^\| `(\d{3})` \| `([a-z_]+)` \|/gm)].map((m) => [m[2]!, Number(m[1])]),
);

const compiled = new WeakMap<object, ReturnType<typeof ajv.compile>>();
function validate(schema: object, value: unknown, what: string): void {
  const check = compiled.get(schema) ?? ajv.compile(schema);
  compiled.set(schema, check);
  if (!check(value)) throw new Error(`${what}: ${ajv.errorsText(check.errors, { separator: "\n  " })}`);
}

/** Validate one answer against the operation's schema for its status (exact, else `4xx`/`5xx`). */
async function checkAnswer(res: Response, path: string, method: string): Promise<unknown> {
  const op = spec.paths[path]![method]!;
  const response = op.responses[String(res.status)] ?? op.responses[`${String(res.status)[0]}xx`];
  expect(response, `${method} ${path} ${res.status} is in the spec`).toBeDefined();
  const body = await res.json();
  validate(response!.content!["application/json"]!.schema, body, `${method.toUpperCase()} ${path} → ${res.status}`);
  if (res.status >= 400) {
    const code = (body as { error: { code: string } }).error.code;
    expect(ERROR_TABLE.get(code), `status of '${code}' in the spec's table`).toBe(res.status);
  }
  const reset = Number(res.headers.get("ratelimit-reset"));
  expect(Number(res.headers.get("ratelimit-limit"))).toBe(3600);
  expect(reset * 1000).toBeGreaterThanOrEqual(Date.now() - 10_000); // a full budget resets "now"
  expect(reset * 1000).toBeLessThanOrEqual(Date.now() + 3_601_000);
  return body;
}

const TOKEN = "fake-schema-token";
const fake: HetznerFake = await startHetznerFake({ token: TOKEN, actionPolls: 1, runningPolls: 1 });
afterAll(() => fake.close());
beforeEach(() => fake.reset());

const call = (method: string, path: string, body?: unknown, token = TOKEN) =>
  fetch(`${fake.url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });

const CREATE = {
  name: "sam-n-1",
  server_type: "cx23",
  location: "fsn1",
  image: "docker-ce",
  user_data: "#cloud-config\n",
  labels: { "sam-node": "true", "sam-node-id": "n-1" },
  start_after_create: true,
};

describe("the Hetzner fake against Hetzner's description", () => {
  test("servers: create, get while initializing and running, list, delete — and the action", async () => {
    const created = (await checkAnswer(await call("POST", "/servers", CREATE), "/servers", "post")) as {
      server: { id: number; public_net: { ipv6: { dns_ptr: unknown } } };
      action: { id: number };
    };
    expect(created.server.public_net.ipv6.dns_ptr).toBeNull();
    const id = created.server.id;
    for (let i = 0; i < 3; i++) await checkAnswer(await call("GET", `/servers/${id}`), "/servers/{id}", "get");
    await checkAnswer(await call("GET", `/actions/${created.action.id}`), "/actions/{id}", "get");
    await checkAnswer(await call("GET", `/actions/${created.action.id}`), "/actions/{id}", "get");
    fake.addServer({ labels: { "sam-node": "true" }, ipv4: false });
    const list = await call("GET", "/servers?label_selector=sam-node&page=1&per_page=1");
    expect(list.headers.get("link")).toContain('rel="next"');
    const listed = (await checkAnswer(list, "/servers", "get")) as {
      servers: unknown[];
      meta: { pagination: { next_page: number } };
    };
    expect(listed.meta.pagination.next_page).toBe(2);
    const page2 = (await checkAnswer(
      await call("GET", "/servers?label_selector=sam-node&page=2&per_page=1"),
      "/servers",
      "get",
    )) as { servers: { public_net: { ipv4: unknown } }[] };
    expect(page2.servers[0]!.public_net.ipv4).toBeNull();
    await checkAnswer(await call("DELETE", `/servers/${id}`), "/servers/{id}", "delete");
  });

  test("errors carry the spec's code for their status", async () => {
    await checkAnswer(await call("GET", "/servers", undefined, "wrong"), "/servers", "get");
    await checkAnswer(await call("GET", "/servers/999"), "/servers/{id}", "get");
    await checkAnswer(await call("POST", "/servers", { ...CREATE, server_type: "" }), "/servers", "post");
    await checkAnswer(await call("POST", "/servers", "{not json"), "/servers", "post");
    await checkAnswer(
      await call("POST", "/servers", { ...CREATE, labels: { "hetzner.cloud/x": "y" } }),
      "/servers",
      "post",
    );
    await checkAnswer(await call("POST", "/servers", CREATE), "/servers", "post");
    await checkAnswer(await call("POST", "/servers", CREATE), "/servers", "post"); // 409 uniqueness_error
    for (const status of [500, 502, 503, 504, 429]) {
      fake.inject("GET", /^\/servers$/, { status });
      const res = await call("GET", "/servers");
      expect(res.status).toBe(status);
      await checkAnswer(res, "/servers", "get");
      fake.reset();
    }
    const limited = await call("GET", "/servers/1", undefined);
    expect(limited.status).toBe(404);
  });

  test("a 429 says when the budget is full again: about an hour after it was spent", async () => {
    fake.exhaustRateLimit();
    const res = await call("GET", "/servers");
    expect(res.status).toBe(429);
    await checkAnswer(res, "/servers", "get");
    expect(res.headers.get("ratelimit-remaining")).toBe("0");
    expect(Number(res.headers.get("ratelimit-reset")) * 1000 - Date.now()).toBeGreaterThan(3_590_000);
  });

  test("every request the provider sends is valid per the spec", async () => {
    const p = createHetznerProvider({
      token: TOKEN,
      apiBase: fake.url,
      serverType: "cx23",
      location: "fsn1",
      image: "docker-ce",
      agentDownloadUrl: "https://downloads.example.com/sam-agent",
      agentSha256: "a".repeat(64),
      baseImage: "mcr.microsoft.com/devcontainers/base:ubuntu",
      pollIntervalMs: 5,
      retry: { baseMs: 5, maxMs: 50, attempts: 3 },
    });
    const { server } = await p.create({
      nodeId: "n-9",
      nodeToken: `samnode_${"n".repeat(40)}`,
      agentToken: `samagent_${"a".repeat(40)}`,
      controlPlaneUrl: "https://sam.example.com",
      labels: { "sam-key": "key_1" },
    });
    await p.list();
    await p.delete(server.id);
    const post = fake.requests.find((r) => r.method === "POST")!;
    validate(
      spec.paths["/servers"]!.post!.requestBody!.content["application/json"]!.schema,
      post.body,
      "POST /servers body",
    );
    expect(fake.requests.map((r) => `${r.method} ${r.status}`)).not.toContain(expect.stringMatching(/ 4\d\d$/));
  });
});
