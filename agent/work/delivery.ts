/**
 * Ships each task's log lines and then its result to the edge (docs/protocol.md § Task log delivery).
 * Lines go in order, in batches of at most 1,000: a batch is sent as soon as the previous one is answered, so
 * a quiet task's line leaves at once and a chatty task's lines gather while a post is in flight. A failed
 * post is retried with backoff from the first unacknowledged seq (read back from the outbox), so an outage
 * loses nothing and a retry duplicates nothing. The result follows the last acknowledged line.
 */
import * as v from "valibot";
import type { ControlPlane, EventRecorder } from "../contracts.ts";
import type { Outbox } from "./outbox.ts";
import { REQUEST_TIMEOUTS } from "../../shared/timeouts.ts";

const BATCH = 1000;
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5_000;
const POST_TIMEOUT_MS = REQUEST_TIMEOUTS.taskLogPost.ms;

const EventsAck = v.object({ accepted: v.optional(v.number()), lastSeq: v.optional(v.nullable(v.number())) });

type TaskShipping = { running: boolean; again: boolean; timer?: ReturnType<typeof setTimeout>; backoffMs: number };

/** A 4xx other than 408/429 will not get better by retrying: the edge refuses this task's delivery. */
function isPermanent(status: number): boolean {
  return status >= 400 && status < 500 && status !== 408 && status !== 429;
}

export type DeliveryDeps = {
  outbox: Outbox;
  controlPlane: ControlPlane;
  events: EventRecorder;
  /** Called once the edge has the result (or refused it for good): the workspace may go. */
  onDelivered: (taskId: string) => void;
};

export class Delivery {
  private readonly tasks = new Map<string, TaskShipping>();
  private readonly idleWaiters = new Set<() => void>();
  private stopped = false;

  constructor(private readonly deps: DeliveryDeps) {}

  /** Something new to ship for this task (a line, or its result). Cheap; call it for every line. */
  kick(taskId: string): void {
    if (this.stopped) return;
    let s = this.tasks.get(taskId);
    if (!s) {
      s = { running: false, again: false, backoffMs: BACKOFF_MIN_MS };
      this.tasks.set(taskId, s);
    }
    if (s.running) {
      s.again = true;
      return;
    }
    if (s.timer) return; // waiting out a backoff; the retry will pick this up
    s.running = true;
    // A microtask later, so lines written in the same tick travel in one batch.
    queueMicrotask(() => void this.pump(taskId, s));
  }

  private async pump(taskId: string, s: TaskShipping): Promise<void> {
    let retry = false;
    try {
      for (;;) {
        s.again = false;
        if (this.stopped) break;
        const lines = this.deps.outbox.pending(taskId, BATCH);
        if (lines.length > 0) {
          const res = await this.post(`/api/agent/tasks/${encodeURIComponent(taskId)}/events`, { events: lines });
          const last = lines[lines.length - 1]!.seq;
          if (res === "retry") {
            retry = true;
            break;
          }
          if (res === "refused") {
            // Retrying cannot help; skip the batch rather than resend it forever.
            this.deps.events.record({
              type: "error",
              level: "error",
              taskId,
              message: `the edge refused task output up to seq ${last}; dropped`,
            });
            this.deps.outbox.ack(taskId, last);
          } else {
            const ack = v.safeParse(EventsAck, await res.json().catch(() => ({})));
            // The edge may already hold later seqs (a retry after a lost answer); never ack less than we sent.
            this.deps.outbox.ack(taskId, Math.max(last, ack.success ? ack.output.lastSeq ?? last : last));
          }
          s.backoffMs = BACKOFF_MIN_MS;
          continue;
        }
        const run = this.deps.outbox.run(taskId);
        if (run?.result && !run.resultDelivered) {
          const res = await this.post(`/api/agent/tasks/${encodeURIComponent(taskId)}/result`, run.result);
          if (res === "retry") {
            retry = true;
            break;
          }
          if (res === "refused") {
            this.deps.events.record({
              type: "error",
              level: "error",
              taskId,
              message: "the edge refused the task result",
            });
          }
          this.deps.outbox.markDelivered(taskId);
          this.tasks.delete(taskId);
          this.deps.onDelivered(taskId);
          break;
        }
        if (!s.again) break;
      }
    } catch (err) {
      this.deps.events.record({
        type: "error",
        level: "error",
        taskId,
        message: `task delivery: ${(err as Error).message}`,
      });
      retry = true;
    } finally {
      s.running = false;
    }
    if (retry && !this.stopped) {
      const wait = s.backoffMs;
      s.backoffMs = Math.min(BACKOFF_MAX_MS, s.backoffMs * 2);
      s.timer = setTimeout(() => {
        s.timer = undefined;
        this.kick(taskId);
      }, wait);
    } else if (s.again) {
      this.kick(taskId);
    }
    this.notifyIdle();
  }

  private async post(path: string, body: unknown): Promise<Response | "retry" | "refused"> {
    let res: Response;
    try {
      res = await this.deps.controlPlane.post(path, body, { signal: AbortSignal.timeout(POST_TIMEOUT_MS) });
    } catch (err) {
      this.deps.events.record({
        type: "error",
        level: "warn",
        message: `edge unreachable: ${(err as Error).message}`,
        detail: { path },
      });
      return "retry";
    }
    if (res.ok) return res;
    await res.body?.cancel().catch(() => {});
    if (isPermanent(res.status)) return "refused";
    this.deps.events.record({ type: "error", level: "warn", message: `edge answered ${res.status}`, detail: { path } });
    return "retry";
  }

  /** True when nothing is queued, in flight or waiting for a retry. */
  idle(): boolean {
    for (const s of this.tasks.values()) if (s.running || s.timer || s.again) return false;
    return true;
  }

  private notifyIdle(): void {
    if (!this.idle()) return;
    for (const w of this.idleWaiters) w();
    this.idleWaiters.clear();
  }

  /** Resolves when idle or at the deadline, whichever is first (shutdown's bounded flush). */
  async waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.idle()) return true;
    return await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => {
        this.idleWaiters.delete(done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(t);
        resolve(true);
      };
      this.idleWaiters.add(done);
    });
  }

  /** Stop retrying; what is left stays in the outbox for the next start. */
  stop(): void {
    this.stopped = true;
    for (const s of this.tasks.values()) clearTimeout(s.timer);
  }
}
