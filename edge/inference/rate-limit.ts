/**
 * Per-key request limits: a token bucket per API key (a key's task tokens share its bucket), holding up to
 * `limit` requests and refilling `limit` per minute. In memory, so each edge instance enforces its own
 * bucket; no database round-trip on the request path.
 */

export type RateDecision = {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the bucket is full again (X-RateLimit-Reset). */
  resetSeconds: number;
  /** Seconds until the next request is allowed (Retry-After); 0 when allowed. */
  retryAfterSeconds: number;
};

type Bucket = { tokens: number; at: number; limit: number };

const MAX_BUCKETS = 10_000;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly now: () => number = () => Date.now()) {}

  take(key: string, limit: number): RateDecision {
    const now = this.now();
    const perMs = limit / 60_000;
    let b = this.buckets.get(key);
    if (!b || b.limit !== limit) {
      if (!b && this.buckets.size >= MAX_BUCKETS) this.prune(now);
      b = { tokens: limit, at: now, limit };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(limit, b.tokens + (now - b.at) * perMs);
      b.at = now;
    }
    const allowed = b.tokens >= 1;
    if (allowed) b.tokens -= 1;
    return {
      allowed,
      limit,
      remaining: Math.floor(b.tokens),
      resetSeconds: Math.ceil((limit - b.tokens) / perMs / 1000),
      retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((1 - b.tokens) / perMs / 1000)),
    };
  }

  /** Full buckets carry no information; dropping them bounds memory. */
  private prune(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + (now - b.at) * (b.limit / 60_000) >= b.limit) this.buckets.delete(key);
    }
  }
}

export function rateLimitHeaders(d: RateDecision): Record<string, string> {
  const h: Record<string, string> = {
    "x-ratelimit-limit": String(d.limit),
    "x-ratelimit-remaining": String(d.remaining),
    "x-ratelimit-reset": String(d.resetSeconds),
  };
  if (!d.allowed) h["retry-after"] = String(d.retryAfterSeconds);
  return h;
}
