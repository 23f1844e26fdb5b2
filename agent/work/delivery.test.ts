import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Delivery } from "./delivery.ts";
import { type FakeEdge, fetchControlPlane, memoryRecorder, startFakeEdge, until } from "../testing/fake-edge.ts";
import { Outbox } from "./outbox.ts";

let base: string;
let edge: FakeEdge;

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), "sam-delivery-"));
  edge = startFakeEdge();
});
afterAll(async () => {
  await edge.stop();
  rmSync(base, { recursive: true, force: true });
});

function setup(name: string, token = edge.token) {
  const outbox = new Outbox(join(base, name));
  const events = memoryRecorder();
  const delivered: string[] = [];
  const delivery = new Delivery({
    outbox,
    controlPlane: fetchControlPlane(edge.url, token),
    events,
    onDelivered: (t) => delivered.push(t),
  });
  return { outbox, delivery, events, delivered };
}

const result = { status: "succeeded" as const, exitCode: 0, steps: [], finishedAt: Date.now(), summary: "ok" };

describe("task log delivery", () => {
  test("lines arrive in order, then the result, and the outbox forgets them", async () => {
    const { outbox, delivery, delivered } = setup("a");
    outbox.createRun("ta", Date.now(), "/x");
    for (let i = 0; i < 2500; i++) {
      outbox.appendLine("ta", "stdout", `line ${i}`);
      delivery.kick("ta");
    }
    outbox.finish("ta", result);
    delivery.kick("ta");
    await until("the result", () => edge.results.get("ta"));
    // The edge records the result before it answers; the agent forgets the run once it has the answer.
    await until("the agent saw the result acknowledged", () => delivered.length > 0);
    expect(edge.linesOf("ta")).toEqual(Array.from({ length: 2500 }, (_, i) => `line ${i}`));
    // Batches never exceed the protocol's 1,000 lines (the fake parses each with TaskLogBatch).
    expect(edge.received.filter((r) => r.taskId === "ta").length).toBe(2500);
    expect(delivered).toEqual(["ta"]);
    expect(outbox.pending("ta", 10)).toEqual([]);
    expect(outbox.run("ta")?.resultDelivered).toBe(true);
    delivery.stop();
    outbox.close();
  });

  test("an edge outage loses nothing and duplicates nothing; the result waits for the last line", async () => {
    const { outbox, delivery } = setup("b");
    outbox.createRun("tb", Date.now(), "/x");
    outbox.appendLine("tb", "stdout", "before");
    delivery.kick("tb");
    await until("the first line", () => edge.linesOf("tb").length === 1);
    await edge.goDown();
    for (let i = 0; i < 50; i++) {
      outbox.appendLine("tb", i % 2 ? "stderr" : "stdout", `during ${i}`);
      delivery.kick("tb");
    }
    outbox.finish("tb", result);
    delivery.kick("tb");
    await until("a failed attempt", () => !delivery.idle());
    edge.comeBack();
    edge.failNext = 2; // and then two 503s before it is healthy
    await until("the result after the outage", () => edge.results.get("tb"), 15_000);
    const seqs = edge.logs.get("tb")!.map((e) => e.seq);
    expect(seqs).toEqual(Array.from({ length: 51 }, (_, i) => i));
    expect(edge.linesOf("tb").slice(0, 3)).toEqual(["before", "during 0", "during 1"]);
    expect(edge.received.filter((r) => r.taskId === "tb").length).toBe(51);
    delivery.stop();
    outbox.close();
  }, 20_000);

  test("what was not delivered before a restart is delivered by the next process", async () => {
    await edge.goDown();
    const first = setup("c");
    first.outbox.createRun("tc", Date.now(), "/x");
    for (let i = 0; i < 5; i++) first.outbox.appendLine("tc", "stdout", `l${i}`);
    first.outbox.finish("tc", { ...result, summary: "from the first life" });
    first.delivery.kick("tc");
    await until("a failed attempt", () => first.events.events.some((e) => e.message.startsWith("edge unreachable")));
    first.delivery.stop();
    first.outbox.close();

    edge.comeBack();
    const second = setup("c");
    expect(second.outbox.undelivered().map((r) => r.taskId)).toEqual(["tc"]);
    // New lines continue the numbering instead of reusing seqs the edge may already have.
    expect(second.outbox.appendLine("tc", "system", "after restart").seq).toBe(5);
    second.delivery.kick("tc");
    await until("the result", () => edge.results.get("tc"));
    await until("the agent saw the result acknowledged", () => second.delivered.length > 0);
    expect(edge.linesOf("tc")).toEqual(["l0", "l1", "l2", "l3", "l4", "after restart"]);
    expect(edge.results.get("tc")?.summary).toBe("from the first life");
    expect(second.delivered).toEqual(["tc"]);
    second.delivery.stop();
    second.outbox.close();
  }, 15_000);

  test("an edge that refuses the node for good (401) does not make the agent retry forever", async () => {
    const { outbox, delivery, events, delivered } = setup("d", "samnode_wrong");
    outbox.createRun("td", Date.now(), "/x");
    outbox.appendLine("td", "stdout", "x");
    outbox.finish("td", result);
    delivery.kick("td");
    await until("giving up", () => delivered.includes("td"));
    expect(edge.results.has("td")).toBe(false);
    expect(events.events.map((e) => e.message)).toContain("the edge refused the task result");
    delivery.stop();
    outbox.close();
  });
});
