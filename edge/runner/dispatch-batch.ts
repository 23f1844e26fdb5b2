/**
 * The dispatches to one node made in one event-loop turn go to its agent as one `POST /tasks/batch`
 * (shared/wire/task.ts TaskDispatchBatch) when its ready callback reported `batchDispatch`: a burst's
 * submissions come back from their shared statement together (edge/tasks/store.ts `insertSubmissions`), and an
 * HTTP exchange with the agent was the largest part of the edge's CPU per submission after the database's.
 *
 * Each dispatch still gets the answer `POST /tasks` would have given it (status and body), so dispatch.ts
 * handles it exactly as before: taken, already there (409), refused, or transient. A batch the agent does not
 * know (404/405: it predates the route although it said otherwise) is sent again as single calls; any other
 * answer to the batch as a whole, or no answer, is every task's answer. A node that did not report the
 * capability, a single dispatch, and a task too large to share a body go alone, as before.
 */
import { setImmediate } from "node:timers";
import * as v from "valibot";
import { errorBody } from "../../shared/errors.ts";
import { parseJsonText } from "../../shared/validate.ts";
import { TASK_DISPATCH_BATCH } from "../../shared/wire/agent.ts";
import { type TaskDispatch, TaskDispatchBatchAnswer } from "../../shared/wire/task.ts";
import type { AgentClient } from "../nodes/agent-client.ts";
import type { NodeRecord } from "../nodes/store.ts";

/** What the agent answered one dispatch: the status and the body text of `POST /tasks`. */
export type DispatchAnswer = { status: number; text: string };

type Pending = {
  node: NodeRecord;
  /** The dispatch as JSON, serialised once: sent alone or as one element of a batch's list. */
  json: string;
  /** The size of `json` in UTF-8 bytes (at most). */
  bytes: number;
  timeoutMs: number;
  resolve(a: DispatchAnswer): void;
  reject(err: unknown): void;
};

/** Below the agent's body limit for a batch, with room for the envelope. */
const BATCH_BYTES = TASK_DISPATCH_BATCH.maxBytes / 2;

export class DispatchBatcher {
  private pending = new Map<string, Pending[]>();

  constructor(private readonly agent: AgentClient) {}

  send(node: NodeRecord, body: TaskDispatch, timeoutMs: number): Promise<DispatchAnswer> {
    return new Promise((resolve, reject) => {
      const json = JSON.stringify(body);
      const item = { node, json, bytes: utf8Bytes(json), timeoutMs, resolve, reject };
      const queue = this.pending.get(node.id);
      if (queue) {
        queue.push(item);
        return;
      }
      this.pending.set(node.id, [item]);
      // After this turn's callbacks: the dispatches they make to the same node join this call.
      setImmediate(() => {
        const items = this.pending.get(node.id) ?? [];
        this.pending.delete(node.id);
        void this.flush(items);
      });
    });
  }

  private async flush(items: Pending[]): Promise<void> {
    const node = items[items.length - 1]!.node;
    if (items.length === 1 || node.capabilities?.batchDispatch !== true) {
      await Promise.all(items.map((p) => this.alone(p)));
      return;
    }
    const chunks: Pending[][] = [];
    let chunk: Pending[] = [];
    let size = 0;
    for (const p of items) {
      if (p.bytes > BATCH_BYTES) {
        void this.alone(p);
        continue;
      }
      if (chunk.length === TASK_DISPATCH_BATCH.maxTasks || size + p.bytes > BATCH_BYTES) {
        chunks.push(chunk);
        chunk = [];
        size = 0;
      }
      chunk.push(p);
      size += p.bytes + 1;
    }
    if (chunk.length > 0) chunks.push(chunk);
    await Promise.all(chunks.map((c) => (c.length === 1 ? this.alone(c[0]!) : this.together(node, c))));
  }

  private async alone(p: Pending): Promise<void> {
    try {
      const res = await this.agent.call(p.node, "/tasks", { method: "POST", json: p.json, timeoutMs: p.timeoutMs });
      p.resolve({ status: res.status, text: await res.text() });
    } catch (err) {
      p.reject(err);
    }
  }

  private async together(node: NodeRecord, items: Pending[]): Promise<void> {
    let answer: DispatchAnswer;
    try {
      const res = await this.agent.call(node, "/tasks/batch", {
        method: "POST",
        json: `{"tasks":[${items.map((p) => p.json).join(",")}]}`,
        timeoutMs: Math.max(...items.map((p) => p.timeoutMs)),
      });
      answer = { status: res.status, text: await res.text() };
    } catch (err) {
      for (const p of items) p.reject(err);
      return;
    }
    if (answer.status === 404 || answer.status === 405) {
      await Promise.all(items.map((p) => this.alone(p)));
      return;
    }
    if (answer.status !== 200) {
      // The batch refused as a whole (a 5xx, 429, 401, 413…): each task's answer, as if it had been sent alone.
      for (const p of items) p.resolve(answer);
      return;
    }
    const parsed = v.safeParse(TaskDispatchBatchAnswer, parseJsonText(answer.text));
    if (!parsed.success || parsed.output.results.length !== items.length) {
      const message = `the agent's answer to a batch of ${items.length} dispatches is not an answer for each`;
      const bad = { status: 502, text: JSON.stringify(errorBody(message, "upstream_error", "bad_batch_answer")) };
      for (const p of items) p.resolve(bad);
      return;
    }
    parsed.output.results.forEach((r, i) => items[i]!.resolve({ status: r.status, text: JSON.stringify(r.body) }));
  }
}

const encoder = new TextEncoder();

/** UTF-8 bytes of a string: counted when it is long, bounded (3 per UTF-16 unit) when it is not. */
function utf8Bytes(s: string): number {
  return s.length <= 4_096 ? s.length * 3 : encoder.encode(s).byteLength;
}
