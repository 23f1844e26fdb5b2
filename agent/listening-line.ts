/**
 * The line a started agent prints on stdout once it serves (`sam-agent 0.1.0 listening on URL (node ID)`),
 * and its reader: the build's recording run and the tests that start the binary wait for it.
 */
export const listeningLine = (version: string, url: string, nodeId: string) =>
  `sam-agent ${version} listening on ${url} (node ${nodeId})`;
const LISTENING = /listening on (\S+)/;

/** The URL from a started agent's stdout; null when it printed none within `ms` (it failed, or exited). */
export async function listeningUrl(
  stdout: ReadableStream<Uint8Array>,
  ms = 10_000,
): Promise<{ url: string | null; out: string }> {
  const reader = stdout.getReader();
  let out = "";
  const deadline = Date.now() + ms;
  while (!LISTENING.test(out) && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    out += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return { url: LISTENING.exec(out)?.[1] ?? null, out };
}
