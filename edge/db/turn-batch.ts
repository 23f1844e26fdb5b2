/**
 * One call made from many: the calls of one event-loop turn, and those that arrive while the previous call is
 * being written (a burst's agent answers arrive over its few milliseconds), gather and are handed to `run` as
 * one list; each caller gets its own answer. The database server prepares and parses every statement it runs, so N equal moves written as
 * one statement cost it one preparation instead of N. Group commit (group-commit.ts) puts concurrent statements
 * in one transaction; this makes them one statement. `run` answers per item, in order; if it throws, every
 * caller of that list gets the error.
 *
 * With `fillMs`, the next list also waits, up to that long, until it holds as many items as the last one did:
 * under a steady closed-loop load (N callers each waiting for its answer before asking again) the list then
 * settles at all N instead of two halves taking turns.
 */
import { setImmediate } from "node:timers";

type Pending<T, R> = { item: T; resolve(r: R): void; reject(err: unknown): void };

export class TurnBatch<T, R> {
  private pending: Pending<T, R>[] = [];
  private scheduled = false;
  private running = false;

  private last = 0;
  private waitTimer: ReturnType<typeof setTimeout> | null = null;

  /**
   * `max`: most items per call of `run` (an SQL statement's parameters are bounded). `fillMs`: after a call,
   * wait up to this long for as many items as that call carried before the next one goes (0: never wait).
   */
  constructor(
    private readonly run: (items: T[]) => Promise<R[]>,
    private readonly max = 100,
    private readonly fillMs = 0,
  ) {}

  call(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.running || this.pending.length === 0) return;
    if (this.fillMs > 0 && this.pending.length < Math.min(this.last, this.max)) {
      this.waitTimer ??= setTimeout(() => {
        this.waitTimer = null;
        this.last = 0;
        this.schedule();
      }, this.fillMs);
      return;
    }
    if (this.waitTimer) (clearTimeout(this.waitTimer), this.waitTimer = null);
    this.scheduled = true;
    // After this turn's I/O callbacks, as group commit gathers: their calls join this list.
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    this.running = true;
    const chunk = this.pending.splice(0, this.max);
    this.last = chunk.length;
    try {
      const results = await this.run(chunk.map((p) => p.item));
      chunk.forEach((p, j) => p.resolve(results[j]!));
    } catch (err) {
      for (const p of chunk) p.reject(err);
    } finally {
      this.running = false;
      this.schedule();
    }
  }
}
