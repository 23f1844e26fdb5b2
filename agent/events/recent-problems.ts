/**
 * The node's last words: the warnings and errors recorded since the last accepted heartbeat, kept in memory
 * so every heartbeat carries them to the edge (docs/protocol.md § Agent → edge). events.db keeps them too,
 * but it dies with the VM; these outlive a node that vanishes without warning.
 *
 * Bounded: at most `NODE_PROBLEM_LIMITS.perHeartbeat` entries. A problem recorded again while its first entry
 * waits (a heartbeat failing every interval through an outage) only counts on that entry, so a long outage
 * arrives as one line and does not push out what came before it. When the ring is full the oldest entry goes,
 * and one note says how many went.
 */
import * as v from "valibot";
import { NODE_PROBLEM_LIMITS, type NodeProblem } from "../../shared/wire/agent.ts";
import { Id } from "../../shared/wire/common.ts";
import type { EventInput } from "../contracts.ts";

/** The note standing for the entries dropped from a full ring. */
export const DROPPED_PROBLEMS_TYPE = "problems.dropped";

type Entry = { seq: number; problem: NodeProblem };

/** What one heartbeat carries, and what `settle` needs to forget exactly that once it is accepted. */
export type ProblemBatch = { problems: NodeProblem[]; upTo: number };

/** How many entries a full ring dropped, the first and last drop. */
type Drops = { count: number; firstAt: number; lastAt: number };

/** Cut to `max` UTF-16 units without leaving half a surrogate pair at the end. */
function cut(s: string, max: number): string {
  if (s.length <= max) return s;
  const code = s.charCodeAt(max - 1);
  return s.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

export class RecentProblems {
  private entries: Entry[] = [];
  private seq = 0;
  /** Entries up to this seq ride on the heartbeat in flight: a repeat must not count on them (they may go). */
  private inFlightUpTo = 0;
  /** Drops the heartbeat in flight (or a refused one) reported, and drops since: each its own note. */
  private carriedDrops: Drops | null = null;
  private freshDrops: Drops | null = null;
  private readonly capacity: number;

  /** `capacity` counts the dropped-entries note, so a batch always fits one heartbeat. */
  constructor(capacity: number = NODE_PROBLEM_LIMITS.perHeartbeat) {
    this.capacity = Math.max(2, capacity);
  }

  /** Keep a warn or error event (anything else is ignored); never throws, never grows past the bound. */
  add(event: EventInput, at: number): void {
    if (event.level !== "warn" && event.level !== "error") return;
    const problem: NodeProblem = {
      at,
      level: event.level,
      type: cut(event.type, NODE_PROBLEM_LIMITS.typeLength) || "event",
      message: cut(event.message, NODE_PROBLEM_LIMITS.messageLength),
      // Task ids come from the edge; anything else in the field would make the edge refuse the heartbeat.
      taskId: v.is(Id, event.taskId) ? event.taskId : null,
    };
    const same = this.entries.find((e) =>
      e.seq > this.inFlightUpTo && e.problem.type === problem.type && e.problem.message === problem.message &&
      e.problem.taskId === problem.taskId && e.problem.level === problem.level
    );
    if (same) {
      same.problem.repeats = (same.problem.repeats ?? 0) + 1;
      same.problem.lastAt = Math.max(at, same.problem.lastAt ?? same.problem.at);
      return;
    }
    this.entries.push({ seq: ++this.seq, problem });
    while (this.entries.length > this.capacity - 1) {
      this.entries.shift();
      const d = this.freshDrops;
      this.freshDrops = d ? { ...d, count: d.count + 1, lastAt: at } : { count: 1, firstAt: at, lastAt: at };
    }
  }

  /** Nothing waits to be sent. */
  get empty(): boolean {
    return this.entries.length === 0 && this.carriedDrops === null && this.freshDrops === null;
  }

  /** What the next heartbeat carries, oldest first; until `settle`, repeats count on fresh entries only. */
  take(): ProblemBatch {
    this.inFlightUpTo = this.seq;
    const problems = this.entries.map((e) => ({ ...e.problem }));
    const [c, f] = [this.carriedDrops, this.freshDrops];
    // A refused heartbeat's note and the drops since are one note: the entry the edge may already have (same
    // first drop) then only counts up.
    const d = c && f ? { count: c.count + f.count, firstAt: c.firstAt, lastAt: f.lastAt } : c ?? f;
    this.carriedDrops = d;
    this.freshDrops = null;
    if (d) {
      problems.unshift({
        at: d.firstAt,
        level: "warn",
        type: DROPPED_PROBLEMS_TYPE,
        message: "older warnings and errors were dropped: more than the heartbeat carries came between two heartbeats",
        taskId: null,
        repeats: d.count - 1,
        lastAt: d.lastAt,
      });
    }
    return { problems, upTo: this.seq };
  }

  /**
   * The heartbeat carrying `batch` is answered: accepted, it forgets what it carried (a repeat counted since
   * stays, on its own entry); refused or lost, everything stays for the next one.
   */
  settle(batch: ProblemBatch, accepted: boolean): void {
    this.inFlightUpTo = 0;
    if (!accepted) return;
    this.entries = this.entries.filter((e) => e.seq > batch.upTo);
    this.carriedDrops = null;
  }
}
