/**
 * What a second writer costs sqld: the edge's own submissions (TaskStore.submit with its dispatch, the burst's
 * submissions sharing one statement) against a real sqld holding the edge's schema, written by one client in
 * groups of 16, by two clients (two edges, each its own Hrana stream) in groups of 8 at the same time, and by one
 * client in groups of 8 (the group size each of two edges gets). Interleaved rounds, medians of sqld's CPU
 * (user + system from /proc) and of the wall time per submission.
 *   node_modules/.bin/bun scripts/bench/sqld-writers.ts [--groups 300] [--rounds 3]
 */
import { SecretBox } from "../../edge/auth/secret-box.ts";
import { openDatabase } from "../../edge/db/client.ts";
import { migrate } from "../../edge/db/migrate.ts";
import { MIGRATIONS } from "../../edge/db/migrations.ts";
import { startSqld } from "../../edge/testing/sqld.ts";
import { TaskStore } from "../../edge/tasks/store.ts";
import type { TaskSubmission } from "../../shared/wire/task.ts";
import { cpuMicros, flag, median } from "./edge-stats.ts";

const GROUPS = Number(flag("groups", "300"));
const ROUNDS = Number(flag("rounds", "3"));

const sqld = await startSqld();
const first = await openDatabase(sqld.url, null);
await migrate(first, MIGRATIONS);
// One ready node of the key with room for every task, so each submission is dispatched in its statement.
const now = Date.now();
await first.execute({
  sql: `INSERT INTO nodes (id, status, status_at, provider, owner_key_id, node_token_hash, agent_token, slots,
    created_at, ready_at, last_heartbeat_at) VALUES ('node_1', 'ready', 1, 'local', 'key_1', 'h', 'sealed', 100000000, 1, ?, ?)`,
  args: [now, now],
});
const box = await SecretBox.fromKey(new Uint8Array(32).fill(7));
const second = await openDatabase(sqld.url, null);
const stores = [new TaskStore(first, box), new TaskStore(second, box)];
const submission = { prompt: "bench", agent: { type: "command", command: "true" }, labels: {} } as TaskSubmission;
let n = 0;
const submit = (store: TaskStore) => {
  const at = Date.now();
  return store.submit("key_1", submission, `bench-${++n}`, { at: at + 60_000, timer: "queued" }, at, {
    heartbeatAfter: 0,
    deadline: { at: at + 60_000, timer: "dispatched" },
    nextAttemptAt: at + 1_000,
    inferenceTokenHash: crypto.randomUUID(),
  });
};

async function run(writers: number, group: number): Promise<{ cpu: number; wall: number }> {
  const cpu0 = cpuMicros(sqld.pid);
  const t0 = performance.now();
  await Promise.all(
    stores.slice(0, writers).map(async (store) => {
      for (let g = 0; g < GROUPS; g++) await Promise.all(Array.from({ length: group }, () => submit(store)));
    }),
  );
  const count = GROUPS * writers * group;
  return { cpu: (cpuMicros(sqld.pid) - cpu0) / count, wall: (performance.now() - t0) * 1000 / count };
}

const targets: [string, number, number][] = [
  ["one writer, groups of 16", 1, 16],
  ["two writers at once, groups of 8 each", 2, 8],
  ["one writer, groups of 8", 1, 8],
];
await run(1, 16); // warm up: the schema loaded, the first pages in
const results = new Map<string, { cpu: number[]; wall: number[] }>();
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, writers, group] of round % 2 ? [...targets].reverse() : targets) {
    const r = await run(writers, group);
    const acc = results.get(name) ?? { cpu: [], wall: [] };
    acc.cpu.push(r.cpu);
    acc.wall.push(r.wall);
    results.set(name, acc);
  }
}
first.close();
second.close();
await sqld.stop();

console.log(`${GROUPS} groups per writer × ${ROUNDS} interleaved rounds against one sqld (the edge's schema), medians`);
console.log("| writers | sqld CPU µs/submission | wall µs/submission |");
console.log("| --- | ---: | ---: |");
for (const [name, r] of results) {
  console.log(`| ${name} | ${median(r.cpu).toFixed(0)} | ${median(r.wall).toFixed(0)} |`);
}
const [one16, two8, one8] = [...targets.map(([name]) => median(results.get(name)!.cpu))];
console.log(
  `two writers ÷ one writer of 16: CPU ${(two8! / one16!).toFixed(2)}×; two writers ÷ one writer of 8: ${
    (two8! / one8!).toFixed(2)
  }×`,
);
process.exit(0);
