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
  return createClient({ url: remote, authToken: authToken ?? undefined });
}
