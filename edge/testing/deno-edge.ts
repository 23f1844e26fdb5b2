/**
 * The real edge (edge/main.ts) as its own Deno process, for the tests that go through the production entry
 * and runtime: started with the given environment and permissions, ready once its output matches (the
 * listening line by default), its stdout and stderr drained into one kept string (a test can read it, and a
 * full pipe never blocks the edge), stopped with SIGINT as an operator would. Deno-only: `deno check` (npm test)
 * checks it with the Deno tests that import it; tsconfig.json leaves it out.
 */
import { until } from "../../shared/testing/until.ts";

const root = new URL("../..", import.meta.url).pathname;

export type DenoEdge = {
  url: string;
  /** The match of `ready` over the edge's output (group 1 is the URL). */
  match: RegExpExecArray;
  child: Deno.ChildProcess;
  /** Everything the edge printed so far, stdout and stderr. */
  output(): string;
  /** SIGINT, then the exit status once its output is drained. */
  stop(): Promise<Deno.CommandStatus>;
};

export async function startDenoEdge(o: {
  env: Record<string, string>;
  permissions?: string[];
  ready?: RegExp;
  timeoutMs?: number;
}): Promise<DenoEdge> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...(o.permissions ?? ["--allow-all"]), "edge/main.ts"],
    cwd: root,
    env: o.env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let exited = false;
  void child.status.then(() => (exited = true));
  const drained = Promise.all(
    [child.stdout, child.stderr].map((s) =>
      s.pipeThrough(new TextDecoderStream()).pipeTo(new WritableStream({ write: (t) => void (out += t) }))
        .catch(() => {})
    ),
  );
  const stop = async () => {
    try {
      child.kill("SIGINT");
    } catch {
      // already exited
    }
    const status = await child.status;
    await drained;
    return status;
  };
  const pattern = o.ready ?? /listening on (http:\/\/[\d.]+:\d+)/;
  try {
    const match = await until("the edge to start", () => {
      const m = pattern.exec(out);
      if (!m && exited) throw new Error(`the edge exited before it was ready:\n${out}`);
      return m ?? undefined;
    }, o.timeoutMs ?? 30_000);
    return { url: match[1]!, match, child, output: () => out, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
