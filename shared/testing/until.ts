/**
 * Poll until `check` yields a truthy value, and return it, or fail naming `what` after
 * `timeoutMs`. The one way tests wait for something asynchronous: no sleeps as synchronisation. Runs under
 * Bun, Deno and Node alike (only `setTimeout`). The polls back off up to `maxIntervalMs` apart; waits of
 * minutes (a VM's boot in the lab) poll seconds apart.
 */
export async function until<T>(
  what: string,
  check: () => T | null | undefined | false | 0 | "" | Promise<T | null | undefined | false | 0 | "">,
  timeoutMs = 5_000,
  maxIntervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, maxIntervalMs);
  }
}
