/**
 * Inference proxy overhead: the same requests sent straight to an instant OpenAI-compatible upstream
 * ("direct"), through SAM, and through the Portkey gateway, in one run and interleaved in rounds so machine
 * load hits all alike. Prints latency p50/p99 for non-streaming at concurrency 1 and 32 and time-to-first-
 * chunk for streaming, without and with tools (a role-less native tool-call stream, which SAM repairs), the
 * overhead added over direct, and a summary of SAM's added p50 against the bare forwarder's (the floor), the
 * JS pipe's (the bare forwarder passing the answer through a JS stream, as any proxy that reads the streamed
 * bytes must) and Portkey's. SAM is measured under Bun
 * (`Bun.serve`) and under Deno (`Deno.serve`, the edge's production runtime); a bare fetch-forwarding proxy
 * in each runtime shows the floor any proxy there pays. Also printed: the proxy process's CPU time per
 * request (from /proc), which machine load disturbs far less than latency does.
 *
 *   node_modules/.bin/bun scripts/bench/inference-overhead.ts [--rounds 5] [--per-round 300] [--warmup 12000] [--pin] [--base DIR] [--real-auth] [--responses]
 *
 * `--responses`: also SAM's `POST /v1/responses` (bridged onto the same upstream) beside the chat rows:
 * `store: false` as Codex sends it, and stored (one database write per response) under Deno.
 *
 * `--real-auth`: SAM checks the key as the edge does (SHA-256 of the token, key cache, database) instead of
 * comparing it with a constant.
 *
 * `--base DIR` also runs SAM from another code tree (`git archive <ref> | tar -x -C DIR` plus a node_modules
 * symlink) as "SAM before", so a before → after comes from one interleaved run.
 *
 * `--pin` (taskset): the load generator and the upstream on CPU 0, every proxy on CPU 1, so a proxy never
 * competes with the generator for a core (on a 2-core machine; other processes still share both).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { cpuNs } from "./inference-bisect.ts";
import { BENCH_KEY, BENCH_MODEL } from "./inference-servers.ts";
import { freePort } from "../../shared/testing/free-port.ts";

const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const ROUNDS = arg("rounds", 5);
const PER_ROUND = arg("per-round", 300);
const WARMUP = arg("warmup", 12_000);
const PIN = process.argv.includes("--pin");
const REAL_AUTH = process.argv.includes("--real-auth");
const RESPONSES = process.argv.includes("--responses");
const BASE = (() => {
  const i = process.argv.indexOf("--base");
  return i > 0 ? process.argv[i + 1]! : null;
})();
const children: ChildProcess[] = [];
const BUN = join(root, "node_modules/.bin/bun");
const DENO = join(root, "node_modules/.bin/deno");

/** Start a server process (on `cpu` when pinning) and wait for its ready line. */
function startProcess(
  cmd: string,
  args: string[],
  ready: RegExp,
  cpu: number,
): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
  return new Promise((resolve, reject) => {
    const [file, argv] = PIN ? ["taskset", ["-c", String(cpu), cmd, ...args]] : [cmd, args];
    const child = spawn(file, argv, {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1" },
    });
    children.push(child);
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start: ${out.slice(-500)}`)), 30_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = out.replace(/\x1b\[[0-9;]*m/g, "").match(ready);
      if (m) {
        clearTimeout(timer);
        resolve({ child, match: m });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("exit", (code) => reject(new Error(`${cmd} exited ${code}: ${out.slice(-500)}`)));
  });
}

/** `body`/`streamBody` replace the chat request for targets on another endpoint (`/v1/responses`). */
type Target = {
  name: string;
  url: string;
  headers: Record<string, string>;
  pid: number | null;
  body?: string;
  streamBody?: string;
};

/** CPU time a process has used so far, in ms (ns resolution); taskset execs, so the pid is the server's. */
const cpuMs = (pid: number) => cpuNs(pid) / 1e6;

const body = (stream: boolean) =>
  JSON.stringify({ model: BENCH_MODEL, stream, messages: [{ role: "user", content: "ping" }] });
const BODY = body(false);
const STREAM_BODY = body(true);
const responsesBody = (stream: boolean, store: boolean) =>
  JSON.stringify({ model: BENCH_MODEL, stream, store, input: "ping" });
const TOOL_STREAM_BODY = JSON.stringify({
  model: BENCH_MODEL,
  stream: true,
  messages: [{ role: "user", content: "Weather in Paris?" }],
  tools: [{
    type: "function",
    function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } },
  }],
});

/** Milliseconds for one non-streaming request, body read in full. */
async function once(t: Target): Promise<number> {
  const start = performance.now();
  const res = await fetch(t.url, { method: "POST", headers: t.headers, body: t.body ?? BODY });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`${t.name}: HTTP ${res.status}`);
  return performance.now() - start;
}

/** Milliseconds to the first streamed chunk; the rest is drained outside the measurement. */
async function firstChunk(t: Target, body = STREAM_BODY): Promise<number> {
  const start = performance.now();
  const res = await fetch(t.url, {
    method: "POST",
    headers: t.headers,
    body: body === STREAM_BODY ? t.streamBody ?? body : body,
  });
  const reader = res.body!.getReader();
  await reader.read();
  const ms = performance.now() - start;
  while (!(await reader.read()).done) { /* drain */ }
  if (res.status !== 200) throw new Error(`${t.name}: HTTP ${res.status}`);
  return ms;
}

async function concurrent(t: Target, n: number, c: number): Promise<number[]> {
  const out: number[] = [];
  let left = n;
  await Promise.all(Array.from({ length: c }, async () => {
    while (left-- > 0) out.push(await once(t));
  }));
  return out;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function main() {
  if (PIN) spawn("taskset", ["-p", "-c", "0", String(process.pid)], { stdio: "ignore" });
  const up = await startProcess(BUN, ["scripts/bench/inference-servers.ts", "upstream"], /PORT (\d+)/, 0);
  const upstream = `http://127.0.0.1:${up.match[1]}/v1`;
  const server = (runtime: string[], role: string, tree = root) => {
    const options = role === "sam" && REAL_AUTH ? ["--real-auth"] : [];
    return startProcess(
      runtime[0]!,
      [...runtime.slice(1), join(tree, "scripts/bench/inference-servers.ts"), role, "--upstream", upstream, ...options],
      /PORT (\d+)/,
      1,
    );
  };
  const samBun = await server([BUN], "sam");
  const samDeno = await server([DENO, "run", "-A"], "sam");
  const before = BASE ? [await server([BUN], "sam", BASE), await server([DENO, "run", "-A"], "sam", BASE)] : null;
  const bareBun = await server([BUN], "bare");
  const bareDeno = await server([DENO, "run", "-A"], "bare");
  const pipeBun = await server([BUN], "pipe");
  const pipeDeno = await server([DENO, "run", "-A"], "pipe");
  const portkeyPort = await freePort();
  // Portkey under Bun, like SAM here: under Node 20 its streaming path fails ("TypeError: immutable" when it
  // appends headers to undici's fetch response), so Node cannot serve the streaming row.
  const portkey = await startProcess(
    BUN,
    [join(root, "node_modules/@portkey-ai/gateway/build/start-server.js"), `--port=${portkeyPort}`],
    /Ready for connections/,
    1,
  );

  const json = { "content-type": "application/json", authorization: `Bearer ${BENCH_KEY}` };
  const at = (p: { match: RegExpMatchArray }) => `http://127.0.0.1:${p.match[1]}/v1/chat/completions`;
  const targets: Target[] = [
    { name: "direct", url: `${upstream}/chat/completions`, headers: json, pid: null },
    { name: "SAM (Bun)", url: at(samBun), headers: json, pid: samBun.child.pid! },
    { name: "SAM (Deno)", url: at(samDeno), headers: json, pid: samDeno.child.pid! },
    ...(before
      ? [
        { name: "SAM before (Bun)", url: at(before[0]!), headers: json, pid: before[0]!.child.pid! },
        { name: "SAM before (Deno)", url: at(before[1]!), headers: json, pid: before[1]!.child.pid! },
      ]
      : []),
    {
      name: "Portkey (Bun)",
      url: `http://127.0.0.1:${portkeyPort}/v1/chat/completions`,
      headers: { ...json, "x-portkey-provider": "openai", "x-portkey-custom-host": upstream },
      pid: portkey.child.pid!,
    },
    ...(RESPONSES
      ? [
        { name: "SAM responses (Bun)", pid: samBun.child.pid!, store: false, port: samBun.match[1] },
        { name: "SAM responses (Deno)", pid: samDeno.child.pid!, store: false, port: samDeno.match[1] },
        { name: "SAM responses stored (Deno)", pid: samDeno.child.pid!, store: true, port: samDeno.match[1] },
      ].map((r) => ({
        name: r.name,
        url: `http://127.0.0.1:${r.port}/v1/responses`,
        headers: json,
        pid: r.pid,
        body: responsesBody(false, r.store),
        streamBody: responsesBody(true, r.store),
      }))
      : []),
    { name: "bare proxy (Bun)", url: at(bareBun), headers: json, pid: bareBun.child.pid! },
    { name: "bare proxy (Deno)", url: at(bareDeno), headers: json, pid: bareDeno.child.pid! },
    { name: "JS pipe (Bun)", url: at(pipeBun), headers: json, pid: pipeBun.child.pid! },
    { name: "JS pipe (Deno)", url: at(pipeDeno), headers: json, pid: pipeDeno.child.pid! },
  ];

  const scenarios = [
    {
      name: "non-streaming, concurrency 1",
      run: async (t: Target) => {
        const xs = [];
        for (let i = 0; i < PER_ROUND; i++) xs.push(await once(t));
        return xs;
      },
    },
    { name: "non-streaming, concurrency 32", run: (t: Target) => concurrent(t, PER_ROUND * 4, 32) },
    {
      name: "streaming, time to first chunk",
      run: async (t: Target) => {
        const xs = [];
        for (let i = 0; i < PER_ROUND; i++) xs.push(await firstChunk(t));
        return xs;
      },
    },
    {
      name: "streaming with tools, time to first chunk",
      run: async (t: Target) => {
        const xs = [];
        for (let i = 0; i < PER_ROUND; i++) xs.push(await firstChunk(t, TOOL_STREAM_BODY));
        return xs;
      },
    },
  ];
  const summary: string[] = [];

  // Warm up every path (JIT, keep-alive connections) before measuring. Under Bun, SAM's CPU per request
  // settles only after ~10,000 requests (JIT tiers): with 200 warm-up requests the c=32 rows measured the
  // warm-up (first rounds ≈ 60–80 µs, then ≈ 42 µs, in inference-bisect.ts), which no long-running edge pays.
  for (const t of targets) {
    for (let i = 0; i < 200; i++) await once(t);
    await concurrent(t, WARMUP, 32);
    for (let i = 0; i < 200; i++) await firstChunk(t);
    for (let i = 0; i < 200; i++) await firstChunk(t, TOOL_STREAM_BODY);
  }

  console.log(
    `\nrounds ${ROUNDS} × ${PER_ROUND} requests per target (×4 at concurrency 32), interleaved${PIN ? ", pinned" : ""}${
      REAL_AUTH ? ", SAM with the edge's key check" : ""
    }; ms\n`,
  );
  console.log("| scenario | target | p50 | p99 | added p50 | added p99 | proxy CPU µs/request |");
  console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
  for (const sc of scenarios) {
    const samples = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    const cpu = new Map<string, number>(targets.map((t) => [t.name, 0]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const t of targets) {
        const before = t.pid ? cpuMs(t.pid) : 0;
        samples.get(t.name)!.push(...await sc.run(t));
        if (t.pid) cpu.set(t.name, cpu.get(t.name)! + cpuMs(t.pid) - before);
      }
    }
    const d = samples.get("direct")!;
    for (const t of targets) {
      const xs = samples.get(t.name)!;
      const p50 = pct(xs, 50);
      const p99 = pct(xs, 99);
      const added = t.name === "direct" ? ["—", "—"] : [(p50 - pct(d, 50)).toFixed(3), (p99 - pct(d, 99)).toFixed(3)];
      const perRequest = t.pid ? ((cpu.get(t.name)! * 1000) / xs.length).toFixed(0) : "—";
      console.log(
        `| ${sc.name} | ${t.name} | ${p50.toFixed(3)} | ${p99.toFixed(3)} | ${added[0]} | ${
          added[1]
        } | ${perRequest} |`,
      );
    }
    const added = (name: string) => pct(samples.get(name)!, 50) - pct(d, 50);
    for (const rt of ["Deno", "Bun"]) {
      const sam = added(`SAM (${rt})`);
      const floor = added(`bare proxy (${rt})`);
      const pipe = added(`JS pipe (${rt})`);
      const portkey = added("Portkey (Bun)");
      summary.push(
        `| ${sc.name} | ${rt} | ${sam.toFixed(3)} | ${floor.toFixed(3)} | ${(sam / floor).toFixed(2)}× | ${
          pipe.toFixed(3)
        } | ${(sam / pipe).toFixed(2)}× | ${portkey.toFixed(3)} | ${sam < portkey ? "yes" : "no"} |`,
      );
    }
  }
  console.log(
    "\nSAM's added p50 against the floor (a bare fetch forwarder in the same runtime), the JS pipe (the bare " +
      "forwarder reading the answer through a JS stream) and Portkey; ms\n",
  );
  console.log(
    "| scenario | runtime | SAM added p50 | floor added p50 | SAM ÷ floor | JS pipe added p50 | SAM ÷ JS pipe | Portkey added p50 | SAM ahead of Portkey |",
  );
  console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
  for (const line of summary) console.log(line);
}

try {
  await main();
} finally {
  for (const c of children) c.kill("SIGTERM");
}
process.exit(0);
