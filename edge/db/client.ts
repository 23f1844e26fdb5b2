/**
 * The one place that picks a libSQL client by URL scheme. Deno Deploy loads no native addons, so remote
 * URLs go through `@libsql/client/web` and only `file:` loads the native client (imported lazily).
 */
import type { Client } from "@libsql/client";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";

export type { Client } from "@libsql/client";

export async function openDatabase(url: string, authToken: string | null): Promise<Client> {
  if (url.startsWith("file:")) {
    const path = url.slice("file:".length).split("?")[0]!;
    if (path && path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const { createClient } = await import("@libsql/client");
    const client = createClient({ url });
    // WAL lets readers (SSE followers, exports) run beside the writer; the busy timeout rides out short locks.
    await client.execute("PRAGMA journal_mode = WAL");
    await client.execute("PRAGMA busy_timeout = 5000");
    return client;
  }
  const { createClient } = await import("@libsql/client/web");
  const remote = url.startsWith("libsql:") ? url.replace(/^libsql:/, "https:") : url;
  return retryingBusy(createClient({ url: remote, authToken: authToken ?? undefined, fetch: fetchWithTimeout }));
}

/** A request to the database server that hangs fails instead of holding its caller forever. */
const REQUEST_TIMEOUT_MS = 15_000;

function fetchWithTimeout(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  return fetch(input, { ...init, signal: init?.signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
}

/** How long a statement keeps retrying while the server reports the database locked. */
const BUSY_RETRY_MS = 5_000;

/**
 * sqld answers SQLITE_BUSY at once when concurrent writers collide (there is no busy timeout over HTTP). A
 * statement or batch that failed so was rolled back whole, so retrying it with a short backoff is safe.
 */
function retryingBusy(client: Client): Client {
  const retry = async <T>(work: () => Promise<T>): Promise<T> => {
    const deadline = Date.now() + BUSY_RETRY_MS;
    for (let delay = 2; ; delay = Math.min(delay * 2, 100)) {
      try {
        return await work();
      } catch (err) {
        if ((err as { code?: string }).code !== "SQLITE_BUSY" || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random())));
      }
    }
  };
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === "execute") return (...args: Parameters<Client["execute"]>) => retry(() => target.execute(...args));
      if (prop === "batch") return (...args: Parameters<Client["batch"]>) => retry(() => target.batch(...args));
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
