// TurnBatch: the calls of one turn, and those made while the last list is running, go out as one list; with
// `fillMs` the next list also waits (up to that long) for as many items as the last one had — so a closed loop
// of N callers settles at one list of N instead of two halves taking turns — and a lone call still goes.
import { expect, test } from "bun:test";
import { setImmediate } from "node:timers";
import { TurnBatch } from "./turn-batch.ts";

/** A batch whose runs the test releases one by one; each run is recorded with its items. */
function controlled(fillMs: number) {
  const runs: { items: string[]; release(): void }[] = [];
  const started: (() => void)[] = [];
  const batch = new TurnBatch<string, string>(
    (items) =>
      new Promise((resolve) => {
        runs.push({ items, release: () => resolve(items.map((i) => `${i}!`)) });
        started.shift()?.();
      }),
    100,
    fillMs,
  );
  const nextRun = () => new Promise<void>((r) => started.push(r));
  return { batch, runs, nextRun };
}

test("a list waits for as many items as the last one carried, and goes as soon as it has them", async () => {
  const { batch, runs, nextRun } = controlled(60_000);
  let run = nextRun();
  const first = ["a", "b", "c"].map((x) => batch.call(x));
  await run;
  expect(runs[0]!.items).toEqual(["a", "b", "c"]);
  // Two arrive while the first list runs; the next list waits for a third (the fill time is a minute here).
  const second = ["d", "e"].map((x) => batch.call(x));
  run = nextRun();
  runs[0]!.release();
  expect(await Promise.all(first)).toEqual(["a!", "b!", "c!"]);
  await new Promise((r) => setTimeout(r, 20));
  expect(runs).toHaveLength(1);
  second.push(batch.call("f"));
  await run;
  expect(runs[1]!.items).toEqual(["d", "e", "f"]);
  runs[1]!.release();
  expect(await Promise.all(second)).toEqual(["d!", "e!", "f!"]);
});

test("a lone call after a larger list goes once the fill time is over", async () => {
  const { batch, runs, nextRun } = controlled(30);
  let run = nextRun();
  const first = ["a", "b"].map((x) => batch.call(x));
  await run;
  runs[0]!.release();
  await Promise.all(first);
  run = nextRun();
  const lone = batch.call("z");
  await run;
  expect(runs[1]!.items).toEqual(["z"]);
  runs[1]!.release();
  expect(await lone).toBe("z!");
});

test("without a fill time the next list goes with whatever is waiting", async () => {
  const { batch, runs, nextRun } = controlled(0);
  let run = nextRun();
  const first = ["a", "b", "c"].map((x) => batch.call(x));
  await run;
  const second = batch.call("d");
  run = nextRun();
  runs[0]!.release();
  await Promise.all(first);
  await run;
  expect(runs[1]!.items).toEqual(["d"]);
  runs[1]!.release();
  expect(await second).toBe("d!");
});

/** A batch riding with `carrier`; its runs are recorded and answered at once. */
function rider(carrier: TurnBatch<string, string>, waitMs: number, activeMs = waitMs) {
  const runs: string[][] = [];
  const batch = new TurnBatch<string, string>(
    (items) => (runs.push(items), Promise.resolve(items.map((i) => `${i}?`))),
    100,
    0,
    { with: carrier, waitMs, activeMs },
  );
  return { batch, runs };
}

test("while its carrier is active, a rider waits for the carrier's next call and starts with it, in the same step", async () => {
  const carrier = controlled(60_000);
  const { batch, runs } = rider(carrier.batch, 60_000);
  let run = carrier.nextRun();
  const first = ["a", "b"].map((x) => carrier.batch.call(x));
  await run;
  // The carrier's first list is running: the rider's call waits (its own wait is a minute here).
  const moved = batch.call("m");
  await new Promise((r) => setTimeout(r, 20));
  expect(runs).toEqual([]);
  carrier.runs[0]!.release();
  await Promise.all(first);
  // Still waiting while the carrier gathers its next list, which then starts; the rider starts right with it.
  const second = ["c", "d"].map((x) => carrier.batch.call(x));
  run = carrier.nextRun();
  await run;
  expect(carrier.runs[1]!.items).toEqual(["c", "d"]);
  expect(runs).toEqual([["m"]]);
  expect(await moved).toBe("m?");
  carrier.runs[1]!.release();
  await Promise.all(second);
});

/** One turn of the event loop: what a batch scheduled without waiting has started by then. */
const aTurn = () => new Promise((r) => setImmediate(r));

test("a rider goes alone once its wait is over, and in its own turn when its carrier has been quiet", async () => {
  const carrier = controlled(60_000);
  const { batch, runs } = rider(carrier.batch, 20, 300);
  // The carrier never ran: nothing to wait for.
  const x = batch.call("x");
  await aTurn();
  expect(runs).toEqual([["x"]]);
  expect(await x).toBe("x?");
  const run = carrier.nextRun();
  const first = carrier.batch.call("a");
  await run;
  carrier.runs[0]!.release();
  await first;
  // The carrier ran just now and nothing follows: the rider waits (20 ms), then goes alone.
  const y = batch.call("y");
  await aTurn();
  expect(runs).toEqual([["x"]]);
  expect(await y).toBe("y?");
  expect(runs).toEqual([["x"], ["y"]]);
  // Longer after the carrier's last call than it counts as active (300 ms): in its own turn again.
  await new Promise((r) => setTimeout(r, 320));
  const z = batch.call("z");
  await aTurn();
  expect(runs).toEqual([["x"], ["y"], ["z"]]);
  expect(await z).toBe("z?");
});
