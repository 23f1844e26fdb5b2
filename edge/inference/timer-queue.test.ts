import { expect, test } from "bun:test";
import { Deadlines } from "./timer-queue.ts";
import { until } from "../../shared/testing/until.ts";

test("each deadline fires at its own time, in order, and a cancelled one never fires", async () => {
  let now = 0;
  const d = new Deadlines(20, () => now);
  const fired: string[] = [];
  d.add(() => fired.push("a")); // due at 20
  now = 10;
  d.add(() => fired.push("b")); // due at 30
  const cancelC = d.add(() => fired.push("c")); // due at 30
  cancelC();
  now = 25; // when the timer fires, only a is due
  await until("deadline a to fire", () => fired.length === 1);
  expect(fired).toEqual(["a"]);
  await Bun.sleep(30);
  expect(fired).toEqual(["a"]); // b is not due yet, however long we wait: the clock says 25
  now = 30;
  await until("deadline b to fire", () => fired.length === 2);
  expect(fired).toEqual(["a", "b"]);
  d.close();
});

test("a deadline added after the queue emptied fires on real time, and close() stops everything", async () => {
  const d = new Deadlines(15);
  let fired = 0;
  d.add(() => fired++)();
  const started = performance.now();
  d.add(() => fired++);
  await until("the deadline to fire", () => fired === 1);
  expect(performance.now() - started).toBeGreaterThanOrEqual(14);
  for (let i = 0; i < 3_000; i++) d.add(() => fired++);
  d.close();
  await Bun.sleep(40);
  expect(fired).toBe(1);
});

test("many settled calls do not delay or drop a pending one behind them", async () => {
  const d = new Deadlines(20);
  const cancels = Array.from({ length: 5_000 }, () =>
    d.add(() => {
      throw new Error("cancelled deadline fired");
    }));
  let fired = false;
  d.add(() => {
    fired = true;
  });
  for (const cancel of cancels.reverse()) cancel();
  await until("the pending deadline to fire", () => fired);
  d.close();
});
