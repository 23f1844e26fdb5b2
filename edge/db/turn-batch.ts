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
 *
 * With `ride`, the list rides with another batch's (the carrier's) next call while the carrier is active — it
 * has items waiting, a call running, or started one within the last `activeMs` — and goes alone after `waitMs`
 * at the latest. Both calls then start in the same turn, so group commit writes them in one transaction and one
 * request: the database server's fixed price per request and per commit (the pages both statements touch are
 * written once) is paid once for the two.
 */
import { setImmediate } from "node:timers";

type Pending<T, R> = { item: T; resolve(r: R): void; reject(err: unknown): void };

/** What a batch that rides with another needs of it (see `ride`). */
type Carrier = { active(withinMs: number): boolean; carry(rider: () => void): void; drop(rider: () => void): void };

export class TurnBatch<T, R> implements Carrier {
  private pending: Pending<T, R>[] = [];
  private scheduled = false;
  private running = false;

  private last = 0;
  private waitTimer: ReturnType<typeof setTimeout> | null = null;

  /** When the last call started (performance.now()), and the batches waiting to start with the next one. */
  private startedAt = -Infinity;
  private readonly riders = new Set<() => void>();
  /** This batch's wait for its carrier's next call, and the callback the carrier calls to end it. */
  private rideTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly boarded = () => this.endRide();

  /**
   * `max`: most items per call of `run` (an SQL statement's parameters are bounded). `fillMs`: after a call,
   * wait up to this long for as many items as that call carried before the next one goes (0: never wait).
   */
  constructor(
    private readonly run: (items: T[]) => Promise<R[]>,
    private readonly max = 100,
    private readonly fillMs = 0,
    private readonly ride?: { with: Carrier; waitMs: number; activeMs: number },
  ) {}

  active(withinMs: number): boolean {
    return this.pending.length > 0 || this.running || performance.now() - this.startedAt < withinMs;
  }

  carry(rider: () => void): void {
    this.riders.add(rider);
  }

  drop(rider: () => void): void {
    this.riders.delete(rider);
  }

  call(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.running || this.pending.length === 0 || this.rideTimer) return;
    if (this.ride?.with.active(this.ride.activeMs)) {
      this.ride.with.carry(this.boarded);
      this.rideTimer = setTimeout(() => this.endRide(), this.ride.waitMs);
      return;
    }
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

  /** The carrier starts its call, or the wait for it is over: start now, in this turn. */
  private endRide(): void {
    if (this.rideTimer) (clearTimeout(this.rideTimer), this.rideTimer = null);
    this.ride?.with.drop(this.boarded);
    if (this.scheduled || this.running || this.pending.length === 0) return;
    this.scheduled = true;
    void this.flush();
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    this.running = true;
    this.startedAt = performance.now();
    const chunk = this.pending.splice(0, this.max);
    this.last = chunk.length;
    try {
      const started = this.run(chunk.map((p) => p.item));
      // The riders start in this same turn, right after this call's first (synchronous) part: its write and
      // theirs are queued together.
      const riders = [...this.riders];
      this.riders.clear();
      for (const rider of riders) rider();
      const results = await started;
      chunk.forEach((p, j) => p.resolve(results[j]!));
    } catch (err) {
      for (const p of chunk) p.reject(err);
    } finally {
      this.running = false;
      this.schedule();
    }
  }
}
