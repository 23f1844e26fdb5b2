/**
 * Retrying a delivery step on transient errors (a 5xx, a rate limit, a dropped connection) without ever
 * outliving the task's deadline: the wait is what the server asked for (`retry-after`, the rate-limit reset)
 * or a doubling backoff, and a wait that would end past the deadline is not started.
 */

export type Attempt<T> = { ok: true; value: T } | { ok: false; transient: false; reason: string } | {
  ok: false;
  transient: true;
  reason: string;
  /** The server's own wait (ms), e.g. from `retry-after`; otherwise the backoff decides. */
  waitMs?: number;
};

export type RetryOptions = {
  /** Epoch ms after which no attempt starts and no wait ends. */
  deadlineAt: number;
  /** First backoff; doubles per attempt. */
  backoffMs: number;
  signal?: AbortSignal;
  /** Told before each wait, so the task's log shows why it pauses. */
  onRetry?: (reason: string, waitMs: number, attempt: number) => void;
  now?: () => number;
};

export type RetryOutcome<T> = { ok: true; value: T } | { ok: false; reason: string; timedOut: boolean };

export async function withRetries<T>(
  o: RetryOptions,
  attempt: (n: number) => Promise<Attempt<T>>,
): Promise<RetryOutcome<T>> {
  const now = o.now ?? Date.now;
  for (let n = 0;; n++) {
    if (o.signal?.aborted) return { ok: false, reason: "cancelled", timedOut: false };
    const r = await attempt(n);
    if (r.ok) return r;
    if (!r.transient) return { ok: false, reason: r.reason, timedOut: false };
    const wait = Math.max(0, r.waitMs ?? o.backoffMs * 2 ** Math.min(n, 8));
    if (now() + wait >= o.deadlineAt) {
      return {
        ok: false,
        reason: `${r.reason}; not retried: the next try (in ${
          Math.ceil(wait / 1000)
        } s) would pass the task's deadline`,
        timedOut: true,
      };
    }
    o.onRetry?.(r.reason, wait, n + 1);
    await pause(wait, o.signal);
  }
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * How long a rate-limited or failing HTTP answer asks to wait, or null when it is not transient. GitHub's
 * secondary limits send `retry-after` (seconds); its primary limit sends `x-ratelimit-remaining: 0` with
 * `x-ratelimit-reset` (epoch seconds) on a 403 or 429.
 */
export function transientWait(res: Response, now: number): { waitMs?: number } | null {
  const retryAfter = res.headers.get("retry-after");
  const remaining = res.headers.get("x-ratelimit-remaining");
  const reset = res.headers.get("x-ratelimit-reset");
  const rateLimited = res.status === 429 || (res.status === 403 && (retryAfter !== null || remaining === "0"));
  if (!rateLimited && res.status < 500) return null;
  if (retryAfter !== null) {
    const secs = Number(retryAfter);
    if (Number.isFinite(secs)) return { waitMs: secs * 1000 };
    const at = Date.parse(retryAfter);
    if (Number.isFinite(at)) return { waitMs: Math.max(0, at - now) };
  }
  if (remaining === "0" && reset !== null && Number.isFinite(Number(reset))) {
    return { waitMs: Math.max(0, Number(reset) * 1000 - now) };
  }
  return {};
}
