/**
 * Runs one command in its own process group (setsid) and streams its output as lines. Cancelling or timing
 * out signals the whole group — SIGTERM, then SIGKILL after a grace — so a shell's children die with it, and
 * whatever the command left running in the background is killed once it exits.
 */

export type OutputStream = "stdout" | "stderr";
export type LineSink = (stream: OutputStream, line: string) => void;

export type GroupRun = {
  exitCode: number | null;
  /** The signal that ended it, e.g. "SIGTERM" after a cancel. */
  signalCode: string | null;
  timedOut: boolean;
  aborted: boolean;
  durationMs: number;
};

export type GroupOptions = {
  cwd: string;
  env: Record<string, string>;
  onLine: LineSink;
  timeoutMs?: number;
  signal?: AbortSignal;
  killGraceMs?: number;
  stdin?: string;
  /** The process group id, as soon as the group exists (kept so a restarted agent can find strays). */
  onSpawn?: (pgid: number) => void;
};

/** A log line is at most this long (TaskLogEvent.message); longer output is split, never dropped. */
export const MAX_LINE = 65_536;

export function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** Split a byte stream into lines; a final line without newline is flushed at the end. */
async function pumpLines(stream: ReadableStream<Uint8Array>, name: OutputStream, onLine: LineSink): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  const emit = (line: string) => {
    const clean = line.endsWith("\r") ? line.slice(0, -1) : line;
    for (let i = 0; i < clean.length || i === 0; i += MAX_LINE) onLine(name, clean.slice(i, i + MAX_LINE));
  };
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      emit(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  }
  pending += decoder.decode();
  if (pending.length > 0) emit(pending);
}

export async function runInGroup(argv: string[], opts: GroupOptions): Promise<GroupRun> {
  const started = performance.now();
  const proc = Bun.spawn(argv, {
    cwd: opts.cwd,
    env: opts.env,
    detached: true,
    stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  opts.onSpawn?.(proc.pid);
  const grace = opts.killGraceMs ?? 3_000;
  let timedOut = false;
  let aborted = false;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const stop = () => {
    signalGroup(proc.pid, "SIGTERM");
    killTimer ??= setTimeout(() => signalGroup(proc.pid, "SIGKILL"), grace);
  };
  const timer = opts.timeoutMs
    ? setTimeout(() => {
      timedOut = true;
      stop();
    }, opts.timeoutMs)
    : undefined;
  const onAbort = () => {
    aborted = true;
    stop();
  };
  if (opts.signal?.aborted) onAbort();
  else opts.signal?.addEventListener("abort", onAbort, { once: true });

  const pumps = Promise.all([
    pumpLines(proc.stdout, "stdout", opts.onLine),
    pumpLines(proc.stderr, "stderr", opts.onLine),
  ]);
  const exitCode = await proc.exited;
  // The leader is gone; anything it left in its group (a backgrounded server, a sleep) goes too, which also
  // closes the pipes those processes held open.
  signalGroup(proc.pid, "SIGKILL");
  await pumps.catch(() => {});
  clearTimeout(timer);
  clearTimeout(killTimer);
  opts.signal?.removeEventListener("abort", onAbort);
  return {
    exitCode: proc.signalCode ? null : exitCode,
    signalCode: proc.signalCode == null ? null : String(proc.signalCode),
    timedOut,
    aborted,
    durationMs: Math.round(performance.now() - started),
  };
}
