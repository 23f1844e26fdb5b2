/**
 * Per-call deadlines of one fixed delay (the upstream's first-byte timeout, the start of the client watch),
 * all served by one timer. With one delay, deadlines come due in the order the calls started: a FIFO whose
 * head expires next, and the timer is re-armed only when it fires (about once per delay under load), not
 * per call. A `setTimeout` + `clearTimeout` per call cost ≈ 2 µs under Deno (a Node-style `Timeout` object
 * each) and showed in the proxy's CPU per request.
 */

type Entry = { at: number; onExpire: (() => void) | null };

export class Deadlines {
  private queue: Entry[] = [];
  private head = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly ms: number, private readonly now: () => number = () => performance.now()) {}

  /** Call `onExpire` once `ms` have passed, unless the returned cancel function is called first. */
  add(onExpire: () => void): () => void {
    const entry: Entry = { at: this.now() + this.ms, onExpire };
    this.queue.push(entry);
    if (this.timer === null) this.arm(this.ms);
    return () => {
      entry.onExpire = null;
      this.dropSettled();
    };
  }

  /** Stop the timer; pending deadlines never fire. */
  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.queue = [];
    this.head = 0;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(this.fire, Math.max(0, ms));
    // A pending deadline must not hold the process open (Bun and Deno both have unref on the handle).
    (this.timer as { unref?: () => void }).unref?.();
  }

  private readonly fire = () => {
    this.timer = null;
    const now = this.now();
    while (this.head < this.queue.length) {
      const e = this.queue[this.head]!;
      if (e.onExpire !== null && e.at > now) break;
      this.head++;
      const expire = e.onExpire;
      e.onExpire = null;
      expire?.();
    }
    this.dropSettled();
    if (this.head < this.queue.length) this.arm(this.queue[this.head]!.at - now);
  };

  /** Settled entries at the head go now; the array is compacted once half of it is spent. */
  private dropSettled(): void {
    const q = this.queue;
    while (this.head < q.length && q[this.head]!.onExpire === null) this.head++;
    if (this.head === q.length) {
      q.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > q.length) {
      this.queue = q.slice(this.head);
      this.head = 0;
    }
  }
}
