/**
 * Where a proxy's CPU goes per request: a proxy assembled from the bare fetch proxy plus any
 * subset of the things SAM's route does, one feature at a time, each in its own process, all driven at the
 * same concurrency against the same instant upstream. The figure is the proxy process's CPU per request
 * from the summed per-thread `schedstat` (ns resolution, so a short run suffices), interleaved in rounds.
 *
 *   node_modules/.bin/bun scripts/bench/inference-bisect.ts [--runtime deno|bun] [--rounds 3] [--requests 4000]
 *     [--concurrency 32] [--stream [--tools]] [--variants "bare;bare,headers;…;sam;base"] [--base DIR] [--pin]
 *
 * Features (comma-separated, added to the bare proxy): `headers` reads the authorization and content-length
 * headers; `text` reads the body as text and sends a string upstream; `decode` decodes it but sends the bytes;
 * `buffer` reads the upstream answer in full and returns a string; `rheaders` returns SAM's five response
 * headers; `ctl` passes an AbortController's signal to the upstream fetch; `reqsignal` touches the request's
 * `signal`; `signal` wires it through the controller to the upstream fetch; `timer` arms and clears a
 * first-byte timer; `hono` serves the handler through a Hono router; `pipe` puts a JS ReadableStream between
 * the upstream body and the client (as SAM's streaming path did), worth measuring with --stream (SSE); `byob` the
 * same read with a BYOB reader into one buffer, `transform` the same through `pipeThrough` and an identity
 * TransformStream; `normalise` is SAM's own stream (proxyStream and its normaliser) without SAM's route, with
 * `tools` as for a request with tools and `idle` with the idle deadline. `--tools` sends a request with tools
 * (the upstream then streams a role-less tool call, which SAM repairs). `sam` is SAM's real inference app, `base`
 * the one in the code tree at --base (`git archive <ref> | tar -x -C DIR` plus a node_modules symlink), for a
 * before → after in one run; `sam,realauth` uses the edge's real key check (see inference-servers.ts). Under Deno, `nolegacy` runs the process with `--unstable-no-legacy-abort` (the
 * request's signal then aborts only on a disconnect), and `cdp` takes a V8 CPU profile over the inspector and
 * prints the functions with the most self time per request (the inspector's own network events inflate
 * fetch-related entries; compare variants, not totals). With --pin the generator and the upstream run on
 * CPU 0 and every proxy on CPU 1.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Hono } from "hono";
import { BENCH_KEY, BENCH_MODEL, type Handler, serve } from "./inference-servers.ts";
import { proxyStream, StreamNormaliser } from "../../edge/inference/stream.ts";
import { Deadlines } from "../../edge/inference/timer-queue.ts";

const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const BUN = join(root, "node_modules/.bin/bun");
const DENO = join(root, "node_modules/.bin/deno");

const utf8 = new TextDecoder();

/** The idle deadline of the `normalise,idle` variant (never reached). */
const idle = { deadlines: new Deadlines(120_000), message: "idle" };

/** The bare proxy with the features named switched on, one at a time, in SAM's order. */
function variant(upstreamUrl: string, features: Set<string>): Handler {
  const url = `${upstreamUrl}/chat/completions`;
  const upHeaders = { "content-type": "application/json" };
  const handler: Handler = async (req) => {
    if (features.has("headers")) {
      if (!req.headers.get("authorization")) return new Response("no key", { status: 401 });
      req.headers.get("content-length");
    }
    const bytes = await req.arrayBuffer();
    let body: BodyInit = bytes;
    if (features.has("text")) body = utf8.decode(bytes);
    if (features.has("decode")) utf8.decode(bytes);
    let signal: AbortSignal | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (features.has("ctl") || features.has("signal") || features.has("timer")) {
      const ctl = new AbortController();
      signal = ctl.signal;
      if (features.has("timer")) timer = setTimeout(() => ctl.abort(), 60_000);
      if (features.has("reqsignal")) req.signal.aborted;
      if (features.has("signal")) {
        const client = req.signal;
        if (client.aborted) ctl.abort(client.reason);
        else client.addEventListener("abort", () => ctl.abort(client.reason), { once: true });
      }
    }
    let res: Response;
    try {
      res = await fetch(url, { method: "POST", headers: upHeaders, body, signal });
    } finally {
      clearTimeout(timer);
    }
    const headers: Record<string, string> = features.has("rheaders")
      ? {
        "x-ratelimit-limit": "1000000",
        "x-ratelimit-remaining": "999999",
        "x-ratelimit-reset": "1",
        "x-sam-upstream": "openai-compatible",
      }
      : {};
    headers["content-type"] = res.headers.get("content-type") ?? "application/json";
    if (features.has("buffer")) return new Response(await res.text(), { status: res.status, headers });
    if (features.has("normalise") && res.body) {
      // SAM's stream alone: its reader and normaliser on the upstream body, without SAM's route around it.
      const tools = new Set(features.has("tools") ? ["get_weather"] : []);
      const body = proxyStream(
        res.body,
        new StreamNormaliser(tools, "chatcmpl-x", BENCH_MODEL),
        () => {},
        features.has("idle") ? idle : undefined,
      );
      return new Response(body, { status: res.status, headers });
    }
    if (features.has("transform") && res.body) {
      // The same through `pipeThrough` and an identity TransformStream.
      const body = res.body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>());
      return new Response(body, { status: res.status, headers });
    }
    if (features.has("byob") && res.body) {
      // The same, read with a BYOB reader into one buffer (a copy goes out), as SAM reads a byte stream.
      const reader = res.body.getReader({ mode: "byob" });
      let buf = new Uint8Array(16384);
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const { done, value } = await reader.read(buf);
          if (done) return controller.close();
          buf = new Uint8Array(value.buffer);
          controller.enqueue(value.slice());
        },
        cancel: (reason) => reader.cancel(reason),
      }, { highWaterMark: 0 });
      return new Response(body, { status: res.status, headers });
    }
    if (features.has("pipe") && res.body) {
      // A JS stream between the upstream body and the client, pulled as the client reads (as SAM's is).
      const reader = res.body.getReader();
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const { done, value } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        },
        cancel: (reason) => reader.cancel(reason),
      }, { highWaterMark: 0 });
      return new Response(body, { status: res.status, headers });
    }
    return new Response(res.body, { status: res.status, headers });
  };
  if (!features.has("hono")) return handler;
  const app = new Hono();
  app.post("/v1/chat/completions", (c) => handler(c.req.raw));
  return app.fetch;
}

// ---- the driver ----

type ProfileNode = {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
};

/** A V8 CPU profile of a Deno process, taken over its inspector WebSocket and summarised as self time. */
class Inspector {
  private id = 0;
  private readonly pending = new Map<number, (result: unknown) => void>();
  private constructor(private readonly ws: WebSocket) {
    ws.onmessage = (e) => {
      const msg = JSON.parse(String(e.data)) as { id?: number; result?: unknown };
      if (msg.id !== undefined) this.pending.get(msg.id)?.(msg.result);
    };
  }

  static connect(url: string): Promise<Inspector> {
    const ws = new WebSocket(url);
    return new Promise((resolve, reject) => {
      ws.onopen = () => resolve(new Inspector(ws));
      ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
    });
  }

  private send(method: string, params: object = {}): Promise<unknown> {
    const id = ++this.id;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  async start(): Promise<void> {
    await this.send("Profiler.enable");
    await this.send("Profiler.setSamplingInterval", { interval: 50 });
    await this.send("Profiler.start");
  }

  async report(name: string, requests: number): Promise<void> {
    const { profile } = await this.send("Profiler.stop") as {
      profile: { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
    };
    const self = new Map<number, number>();
    profile.samples.forEach((node, i) => self.set(node, (self.get(node) ?? 0) + (profile.timeDeltas[i + 1] ?? 0)));
    const byFunction = new Map<string, number>();
    for (const n of profile.nodes) {
      const f = n.callFrame;
      if (f.functionName === "(idle)") continue;
      const key = `${f.functionName || "(anonymous)"} ${f.url.replace(/^.*\/(node_modules\/)?/, "")}:${
        f.lineNumber + 1
      }`;
      byFunction.set(key, (byFunction.get(key) ?? 0) + (self.get(n.id) ?? 0));
    }
    const total = [...byFunction.values()].reduce((a, b) => a + b, 0);
    console.log(
      `\n${name}: sampled self time ${(total / requests).toFixed(1)} µs/request (idle excluded); top functions:`,
    );
    for (const [key, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 45)) {
      console.log(`  ${(us / requests).toFixed(2).padStart(6)} µs  ${key}`);
    }
    this.ws.close();
  }
}

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};

/** Nanoseconds of CPU all live threads of `pid` have used (per-thread schedstat, first field). */
export function cpuNs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return ns;
}

const children: ChildProcess[] = [];

const PIN = process.argv.includes("--pin");

/** Start a server (pinned to `cpu` with --pin) and wait for its `PORT n` line. */
function start(cpu: number, cmd: string, args: string[]): Promise<{ child: ChildProcess; port: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PIN ? "taskset" : cmd, PIN ? ["-c", String(cpu), cmd, ...args] : args, {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1" },
    });
    children.push(child);
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${args.join(" ")} did not start: ${out.slice(-500)}`)), 30_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = out.match(/PORT (\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), out });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("exit", (code) => reject(new Error(`${args.join(" ")} exited ${code}: ${out.slice(-500)}`)));
  });
}

const STREAM = process.argv.includes("--stream");
const TOOLS = process.argv.includes("--tools")
  ? { tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }] }
  : {};
const BODY = JSON.stringify({
  model: BENCH_MODEL,
  stream: STREAM,
  messages: [{ role: "user", content: "ping" }],
  ...TOOLS,
});
const HEADERS = { "content-type": "application/json", authorization: `Bearer ${BENCH_KEY}` };

async function load(url: string, n: number, c: number): Promise<void> {
  let left = n;
  await Promise.all(Array.from({ length: c }, async () => {
    while (left-- > 0) {
      const res = await fetch(url, { method: "POST", headers: HEADERS, body: BODY });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status}`);
    }
  }));
}

async function main() {
  if (PIN) spawn("taskset", ["-p", "-c", "0", String(process.pid)], { stdio: "ignore" });
  const runtime = arg("runtime", "deno");
  const rounds = Number(arg("rounds", "3"));
  const requests = Number(arg("requests", "4000"));
  const concurrency = Number(arg("concurrency", "32"));
  const variants = arg(
    "variants",
    "bare;headers;headers,text;headers,text,buffer;headers,text,buffer,rheaders;headers,text,buffer,rheaders,signal;headers,text,buffer,rheaders,signal,timer;headers,text,buffer,rheaders,signal,timer,hono;sam",
  ).split(";");
  const up = await start(0, BUN, ["scripts/bench/inference-servers.ts", "upstream"]);
  const upstream = `http://127.0.0.1:${up.port}/v1`;
  const run = runtime === "deno" ? [DENO, "run", "-A"] : [BUN];
  const procs = [];
  for (const v of variants) {
    const features = v.split(",");
    const samAt = features[0] === "sam" ? root : features[0] === "base" ? arg("base", "") : null;
    const role = samAt
      ? [
        join(samAt, "scripts/bench/inference-servers.ts"),
        "sam",
        "--upstream",
        upstream,
        ...(features.includes("realauth") ? ["--real-auth"] : []),
      ]
      : ["scripts/bench/inference-bisect.ts", "variant", v, upstream];
    const flags = runtime === "deno" && features.includes("nolegacy") ? ["--unstable-no-legacy-abort"] : [];
    // `cdp`: a V8 CPU profile over the inspector protocol, summarised by function after the run.
    if (runtime === "deno" && features.includes("cdp")) flags.push("--inspect=127.0.0.1:0");
    const p = await start(1, run[0]!, [...run.slice(1), ...flags, ...role]);
    const inspector = features.includes("cdp") ? await Inspector.connect(p.out.match(/ws:\/\/\S+/)![0]) : null;
    procs.push({ name: v, pid: p.child.pid!, url: `http://127.0.0.1:${p.port}/v1/chat/completions`, inspector });
  }
  for (const p of procs) await load(p.url, 2000, concurrency);
  for (const p of procs) await p.inspector?.start();
  const perRound = new Map<string, number[]>(procs.map((p) => [p.name, []]));
  for (let r = 0; r < rounds; r++) {
    for (const p of procs) {
      const before = cpuNs(p.pid);
      await load(p.url, requests, concurrency);
      perRound.get(p.name)!.push((cpuNs(p.pid) - before) / 1000 / requests);
    }
  }
  for (const p of procs) if (p.inspector) await p.inspector.report(p.name, rounds * requests);
  console.log(
    `\n${runtime}, concurrency ${concurrency}, ${rounds} rounds × ${requests} requests; proxy CPU µs/request\n`,
  );
  // Machine load moves every variant of a round alike, so each is also given against the first, round by round.
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const ref = perRound.get(procs[0]!.name)!;
  console.log(
    `| variant | CPU µs/request, median | − ${
      procs[0]!.name
    }, median of rounds | each round |\n| --- | ---: | ---: | --- |`,
  );
  for (const p of procs) {
    const rounds = perRound.get(p.name)!;
    const delta = median(rounds.map((x, i) => x - ref[i]!));
    console.log(
      `| ${p.name} | ${median(rounds).toFixed(1)} | ${delta.toFixed(1)} | ${
        rounds.map((x) => x.toFixed(0)).join(" ")
      } |`,
    );
  }
}

if (import.meta.main) {
  const [role, features, url] = process.argv.slice(2);
  if (role === "variant" && features && url) {
    serve(variant(url, new Set(features.split(","))));
  } else {
    try {
      await main();
    } finally {
      for (const c of children) c.kill("SIGTERM");
    }
    process.exit(0);
  }
}
