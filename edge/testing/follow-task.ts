/** `curl -N …/api/tasks/:id/events?follow=1` as a test does it: every SSE event until the `end` event. */
import type { TaskEventView } from "../../shared/wire/api.ts";

export async function followTask<End = Record<string, unknown>>(
  edgeUrl: string,
  key: string,
  id: string,
): Promise<{ events: TaskEventView[]; end: End; contentType: string | null }> {
  const res = await fetch(`${edgeUrl}/api/tasks/${id}/events?follow=1`, {
    headers: { Authorization: `Bearer ${key}` },
  });
  const events: TaskEventView[] = [];
  let end: End | null = null;
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of res.body!) {
    buf += decoder.decode(chunk, { stream: true });
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const type = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (!data) continue;
      if (type === "end") end = JSON.parse(data);
      else events.push(JSON.parse(data));
    }
    // No early break: the edge closes the stream after `end`, and reading to the close releases the connection.
  }
  if (!end) throw new Error("the stream closed without an end event");
  return { events, end, contentType: res.headers.get("content-type") };
}
