import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { type CloudflareFake, startCloudflareFake, textStream } from "../testing/cloudflare-fake.ts";
import { fakeEnv, type Served, serveInference, TOKENS } from "../testing/inference-harness.ts";

const MODEL = "@cf/meta/llama-3.3-70b-instruct-fp8-fast";
let fake: CloudflareFake;
let s: Served;

beforeAll(async () => {
  fake = startCloudflareFake();
  s = await serveInference(fakeEnv(fake, { SAM_INFERENCE_MAX_BODY_BYTES: "20000", SAM_USAGE_FLUSH_INTERVAL: "1h" }));
});
afterAll(async () => {
  await s.close();
  await fake.close();
});
beforeEach(() => {
  for (const q of Object.values(fake.replies)) q.length = 0;
});

const client = (apiKey: string = TOKENS.alice) => new OpenAI({ baseURL: s.baseURL, apiKey, maxRetries: 0 });
const post = (body: string, token: string | null = TOKENS.alice, signal?: AbortSignal) =>
  fetch(`${s.baseURL}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body,
    signal,
  });

describe("bad input gets OpenAI-style errors the openai client raises as typed errors", () => {
  const cases: [string, Record<string, unknown>, number, string][] = [
    ["missing messages", { model: MODEL }, 400, "messages"],
    ["empty messages", { model: MODEL, messages: [] }, 400, "messages must not be empty"],
    ["a wrong role", { model: MODEL, messages: [{ role: "wizard", content: "hi" }] }, 400, "role must be one of"],
    [
      "a tool message without tool_call_id",
      { model: MODEL, messages: [{ role: "tool", content: "x" }] },
      400,
      "tool_call_id",
    ],
    ["an unknown model", { model: "gpt-9", messages: [{ role: "user", content: "hi" }] }, 404, "GET /v1/models"],
    [
      "tools with a non-object schema",
      {
        model: MODEL,
        messages: [{ role: "user", content: "hi" }],
        tools: [{ type: "function", function: { name: "f", parameters: { type: "string" } } }],
      },
      400,
      "tools.0.function.parameters",
    ],
    [
      "a tool with a bad name",
      {
        model: MODEL,
        messages: [{ role: "user", content: "hi" }],
        tools: [{ type: "function", function: { name: "no spaces" } }],
      },
      400,
      "name must be",
    ],
  ];
  for (const [what, body, status, mentions] of cases) {
    test(what, async () => {
      const err = await client().chat.completions.create(body as never).catch((e) => e);
      expect(err).toBeInstanceOf(status === 404 ? OpenAI.NotFoundError : OpenAI.BadRequestError);
      expect(err.status).toBe(status);
      expect(err.message).toContain(mentions);
      expect(err.error).toMatchObject({ type: "invalid_request_error", code: expect.any(String) });
      expect(fake.requests.length).toBe(0);
    });
  }

  test("non-JSON and empty bodies are 400s, not 500s", async () => {
    for (const body of ["{not json", ""]) {
      const res = await post(body);
      expect(res.status).toBe(400);
      expect((await res.json()).error).toMatchObject({ type: "invalid_request_error", code: "invalid_json" });
    }
  });

  test("a huge body is refused with 413 before any upstream call", async () => {
    const res = await post(JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "x".repeat(50_000) }] }));
    expect(res.status).toBe(413);
    expect((await res.json()).error.message).toContain("SAM_INFERENCE_MAX_BODY_BYTES");
    expect(fake.requests.length).toBe(0);
  });

  test("a huge body sent chunked (no Content-Length) is refused with 413 too; a small chunked one is served", async () => {
    const chunked = (text: string) => {
      const bytes = new TextEncoder().encode(text);
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          for (let i = 0; i < bytes.length; i += 4096) c.enqueue(bytes.subarray(i, i + 4096));
          c.close();
        },
      });
      return fetch(`${s.baseURL}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${TOKENS.alice}` },
        body,
        duplex: "half",
      } as RequestInit);
    };
    const huge = await chunked(
      JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "x".repeat(50_000) }] }),
    );
    expect(huge.status).toBe(413);
    expect((await huge.json()).error.message).toContain("SAM_INFERENCE_MAX_BODY_BYTES");
    expect(fake.requests.length).toBe(0);
    const small = await chunked(
      JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "y".repeat(10_000) }] }),
    );
    expect(small.status).toBe(200);
    expect((await small.json()).choices[0].message.content).toBe("Hello from rest");
    expect(fake.requests.length).toBe(1);
    expect(fake.requests[0]!.body).toMatchObject({ messages: [{ role: "user", content: "y".repeat(10_000) }] });
  });

  test("no key, an unknown key, and the admin or a node token", async () => {
    const noKey = await post(JSON.stringify({ model: MODEL, messages: [] }), null);
    expect(noKey.status).toBe(401);
    expect(noKey.headers.get("www-authenticate")).toBe("Bearer");
    const bad = await client("sam_nope").chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "hi" }],
    }).catch((e) => e);
    expect(bad).toBeInstanceOf(OpenAI.AuthenticationError);
    for (const token of [TOKENS.admin, TOKENS.node]) {
      const err = await client(token).models.list().catch((e) => e);
      expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
      expect(err.message).toContain("POST /api/keys");
    }
  });
});

test("a key over its per-minute limit gets 429 with Retry-After and X-RateLimit-*, other keys do not", async () => {
  // bob's key allows 2 requests per minute.
  const bob = client(TOKENS.bob);
  for (let i = 0; i < 2; i++) {
    await bob.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }] });
  }
  const err = await bob.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }] }).catch((
    e,
  ) => e);
  expect(err).toBeInstanceOf(OpenAI.RateLimitError);
  expect(Number(err.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
  expect(err.headers.get("x-ratelimit-limit")).toBe("2");
  expect(err.headers.get("x-ratelimit-remaining")).toBe("0");
  expect(err.message).toContain("2 requests per minute");
  const ok = await client(TOKENS.alice).chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content: "hi" }],
  });
  expect(ok.choices[0]!.message.content).toBe("Hello from rest");
});

test("GET /v1/models lists the curated catalogue with capabilities", async () => {
  const list = await client(TOKENS.task).models.list();
  const llama = list.data.find((m) => m.id === MODEL) as unknown as {
    capabilities: { tools: boolean };
    context_length: number;
  };
  expect(llama).toMatchObject({ capabilities: { tools: true }, context_length: 24_000 });
  expect(list.data.length).toBeGreaterThan(3);
});

test("a client that disconnects mid-stream aborts the upstream request", async () => {
  fake.replies.rest.push({ sse: textStream(["first "]).slice(0, 2), hang: true });
  const ac = new AbortController();
  const res = await fetch(`${s.baseURL}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${TOKENS.alice}` },
    body: JSON.stringify({ model: MODEL, stream: true, messages: [{ role: "user", content: "hi" }] }),
    signal: ac.signal,
  });
  const reader = res.body!.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  expect(first).toContain("data: ");
  const before = fake.cancelledStreams;
  ac.abort();
  const deadline = Date.now() + 3_000;
  while (fake.cancelledStreams === before && Date.now() < deadline) await Bun.sleep(10);
  expect(fake.cancelledStreams).toBe(before + 1);
});

test("a client that disconnects while the upstream has not answered yet aborts the upstream request", async () => {
  fake.replies.rest.push({ delayMs: 5_000, json: { never: "sent" } });
  const ac = new AbortController();
  const before = fake.abandonedWaits;
  const requests = fake.requests.length;
  const pending = post(
    JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }] }),
    TOKENS.alice,
    ac.signal,
  ).catch((e) => e);
  const deadline = Date.now() + 3_000;
  while (fake.requests.length === requests && Date.now() < deadline) await Bun.sleep(5);
  ac.abort();
  expect(await pending).toBeInstanceOf(Error);
  while (fake.abandonedWaits === before && Date.now() < deadline) await Bun.sleep(5);
  expect(fake.abandonedWaits).toBe(before + 1);
});

test("an upstream that breaks mid-stream ends the stream with an error the openai client raises", async () => {
  fake.replies.rest.push({ sse: textStream(["partial "]).slice(0, 2), breakAfter: true, pieceDelayMs: 20 });
  const stream = await client().chat.completions.create({
    model: MODEL,
    stream: true,
    messages: [{ role: "user", content: "hi" }],
  });
  const err = await (async () => {
    for await (const _ of stream) { /* drain */ }
  })().catch((e) => e);
  expect(err).toBeInstanceOf(OpenAI.APIError);
  expect(String(err.message)).toContain("broke off the stream");
});

describe("usage", () => {
  test("is recorded per key per day, read by the admin for all keys and by a key for itself", async () => {
    // A counted answer (usage reported) and an estimated one (upstream omits usage).
    await client(TOKENS.task).chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }] });
    fake.replies.rest.push({ sse: textStream(["12345678"], null) });
    const stream = await client().chat.completions.create({
      model: MODEL,
      stream: true,
      messages: [{ role: "user", content: "hi" }],
    });
    for await (const _ of stream) { /* drain */ }

    const read = (token: string, query = "") =>
      fetch(`${s.url}/api/usage${query}`, { headers: { authorization: `Bearer ${token}` } });
    const admin = await (await read(TOKENS.admin)).json();
    const keys = new Set(admin.rows.map((r: { keyId: string }) => r.keyId));
    expect(keys).toEqual(new Set(["key_alice", "key_bob"]));
    const alice = admin.rows.find((r: { keyId: string }) => r.keyId === "key_alice");
    expect(alice).toMatchObject({ keyName: "alice", model: MODEL, day: new Date().toISOString().slice(0, 10) });
    expect(alice.requests).toBeGreaterThanOrEqual(2);
    expect(alice.promptTokens).toBeGreaterThanOrEqual(11);
    expect(alice.estimatedRequests).toBeGreaterThanOrEqual(1);

    const own = await (await read(TOKENS.bob)).json();
    expect(own.rows.map((r: { keyId: string }) => r.keyId)).toEqual(["key_bob"]);
    expect((await read(TOKENS.bob, "?key=key_alice")).status).toBe(403);
    expect((await read(TOKENS.task)).status).toBe(403);
    expect((await read(TOKENS.admin, "?from=yesterday")).status).toBe(400);
  });

  test("close() flushes the tally to the database", async () => {
    const other = await serveInference(fakeEnv(fake, { SAM_USAGE_FLUSH_INTERVAL: "1h" }));
    await new OpenAI({ baseURL: other.baseURL, apiKey: TOKENS.alice, maxRetries: 0 }).chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: "hi" }] });
    expect((await other.db.execute("SELECT count(*) AS n FROM inference_usage")).rows[0]!.n).toBe(0);
    await other.inference.close();
    const rows = await other.db.execute("SELECT requests, prompt_tokens, completion_tokens FROM inference_usage");
    expect(rows.rows[0]).toMatchObject({ requests: 1, prompt_tokens: 11, completion_tokens: 7 });
    await other.close();
  });
});

test("with no upstream configured, a 503 names the variables to set and tells clients not to retry", async () => {
  const none = await serveInference({});
  try {
    const started = Date.now();
    const err = await new OpenAI({ baseURL: none.baseURL, apiKey: TOKENS.task }).chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: "hi" }] })
      .catch((e) => e);
    expect(err.status).toBe(503);
    for (const name of ["CF_ACCOUNT_ID", "CF_API_TOKEN", "SAM_AI_GATEWAY", "SAM_INFERENCE_URL"]) {
      expect(err.message).toContain(name);
    }
    expect(err.error).toMatchObject({ type: "unavailable_error", code: "inference_not_configured" });
    // The openai client's default retries would take seconds; x-should-retry: false makes it fail fast.
    expect(Date.now() - started).toBeLessThan(1_000);
  } finally {
    await none.close();
  }
});
