// Upstream reads split at random byte boundaries, through SAM served by Bun.serve over real HTTP: the client
// gets the same events as from the unsplit stream, with `role` on each choice's first delta.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { checkSplitProperty, SplitUpstream } from "../testing/recorded-streams.ts";
import { type Served, serveInference, TOKENS } from "../testing/inference-harness.ts";

const upstream = new SplitUpstream();
let upstreamServer: ReturnType<typeof Bun.serve>;
let sam: Served;

beforeAll(async () => {
  upstreamServer = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: upstream.fetch });
  sam = await serveInference({
    SAM_INFERENCE_URL: `http://127.0.0.1:${upstreamServer.port}/v1`,
    SAM_RATE_LIMIT_RPM: "1000000",
  });
});

afterAll(async () => {
  await sam.close();
  await upstreamServer.stop(true);
});

test(
  "any split of recorded upstream streams reaches the client as the unsplit stream's events (Bun.serve)",
  async () => {
    await checkSplitProperty({ samBase: sam.url, key: TOKENS.alice, upstream });
    expect(sam.logs.filter((l) => !l.includes("usage"))).toEqual([]);
  },
  60_000,
);
