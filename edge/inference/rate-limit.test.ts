import { expect, test } from "bun:test";
import { RateLimiter, rateLimitHeaders } from "./rate-limit.ts";

test("a bucket allows `limit` requests at once, then refills at limit per minute", () => {
  let now = 0;
  const limiter = new RateLimiter(() => now);
  for (let i = 0; i < 3; i++) expect(limiter.take("k", 3).allowed).toBe(true);
  const refused = limiter.take("k", 3);
  expect(refused).toMatchObject({ allowed: false, remaining: 0, retryAfterSeconds: 20 });
  expect(rateLimitHeaders(refused)).toMatchObject({
    "retry-after": "20",
    "x-ratelimit-limit": "3",
    "x-ratelimit-remaining": "0",
  });
  expect(limiter.take("other", 3).allowed).toBe(true);
  now += 20_000;
  expect(limiter.take("k", 3).allowed).toBe(true);
  expect(limiter.take("k", 3).allowed).toBe(false);
});
