/**
 * Limits of `/api/tasks*` per API key, in memory per edge instance like `/v1`'s: submissions per minute (the
 * key's `rateLimitPerMinute`, else `SAM_RATE_LIMIT_RPM`), other requests per minute (`SAM_API_READ_RPM`), and
 * concurrent SSE follows per key and per instance (`SAM_SSE_MAX_PER_KEY`, `SAM_SSE_MAX`). The admin is
 * limited only by the instance-wide follow cap: an admin page follows a task's log through this route too.
 */
import { HttpError } from "../../shared/errors.ts";
import type { Caller } from "../auth/caller.ts";
import type { EdgeLimits } from "../config.ts";
import { RateLimiter, rateLimitHeaders } from "../inference/rate-limit.ts";

/** What a refused follow is told to wait: follows end when their task does, so seconds, not minutes. */
const FOLLOW_RETRY_AFTER_SECONDS = 5;

export class TaskLimits {
  private readonly submissions = new RateLimiter();
  private readonly reads = new RateLimiter();
  private readonly followsByKey = new Map<string, number>();
  private follows = 0;

  constructor(private readonly limits: EdgeLimits) {}

  /** Throws a 429 with `Retry-After` when the key has used its submissions for now. */
  submission(caller: Caller): void {
    if (caller.kind !== "key") return;
    const decision = this.submissions.take(caller.keyId, caller.rateLimitPerMinute ?? this.limits.submissionsPerMinute);
    if (!decision.allowed) {
      throw new HttpError(
        429,
        `task submission limit reached: ${decision.limit} per minute for this key; retry after ${decision.retryAfterSeconds}s`,
        {
          code: "rate_limit_exceeded",
          headers: rateLimitHeaders(decision),
        },
      );
    }
  }

  read(caller: Caller): void {
    if (caller.kind !== "key") return;
    const decision = this.reads.take(caller.keyId, this.limits.readsPerMinute);
    if (!decision.allowed) {
      throw new HttpError(
        429,
        `request limit reached: ${decision.limit} task API requests per minute for this key; retry after ${decision.retryAfterSeconds}s`,
        {
          code: "rate_limit_exceeded",
          headers: rateLimitHeaders(decision),
        },
      );
    }
  }

  /** Takes a follow slot, or throws a 429; call the returned function exactly once when the follow ends. */
  follow(caller: Caller): () => void {
    const keyId = caller.kind === "key" ? caller.keyId : null;
    const busy = (what: string) =>
      new HttpError(429, `${what}; close one or retry after ${FOLLOW_RETRY_AFTER_SECONDS}s`, {
        code: "too_many_follows",
        headers: { "retry-after": String(FOLLOW_RETRY_AFTER_SECONDS) },
      });
    if (this.follows >= this.limits.followsTotal) {
      throw busy(`this edge already serves ${this.limits.followsTotal} live event streams`);
    }
    const mine = keyId === null ? 0 : this.followsByKey.get(keyId) ?? 0;
    if (keyId !== null && mine >= this.limits.followsPerKey) {
      throw busy(`this key already follows ${this.limits.followsPerKey} event streams`);
    }
    this.follows++;
    if (keyId !== null) this.followsByKey.set(keyId, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.follows--;
      if (keyId === null) return;
      const left = (this.followsByKey.get(keyId) ?? 1) - 1;
      if (left > 0) this.followsByKey.set(keyId, left);
      else this.followsByKey.delete(keyId);
    };
  }
}
