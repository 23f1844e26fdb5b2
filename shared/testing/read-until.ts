/**
 * Read a process's output until `pattern` matches (e.g. the edge's "listening on URL" line), or fail with
 * what was read after `timeoutMs`. Runs under Deno and Bun alike.
 */
export async function readUntil(
  stream: ReadableStream<Uint8Array>,
  pattern: RegExp,
  timeoutMs: number,
): Promise<RegExpMatchArray> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      const m = text.match(pattern);
      if (m) return m;
    }
  } finally {
    reader.releaseLock();
  }
  throw new Error(`did not see ${pattern} in: ${text}`);
}
