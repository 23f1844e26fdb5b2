/**
 * A loopback port free at the time of asking, for a server that must be told its port before it starts (a
 * child process, an edge whose public URL names it). `node:net` only, so Bun, Deno and Node share it.
 */
import { createServer } from "node:net";

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
