// TurnBatch: the calls of one turn, and those made while the last list is running, go out as one list; with
// `fillMs` the next list also waits (up to that long) for as many items as the last one had — so a closed loop
// of N callers settles at one list of N instead of two halves taking turns — and a lone call still goes.
import { expect, test } from "bun:test";
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
