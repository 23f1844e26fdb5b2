import { describe, expect, test } from "bun:test";
import * as v from "valibot";
import { NodeView } from "../../shared/wire/api.ts";
import { axisTicks, bootWaterfall } from "./timeline.ts";

const T0 = 1_700_000_000_000;
const node = (over: Partial<NodeView> = {}): NodeView =>
  v.parse(NodeView, {
    id: "n1",
    status: "ready",
    health: "healthy",
    statusReason: null,
    provider: "hetzner",
    providerServerId: "42",
    ipv4: null,
    ownerKeyId: null,
    createdAt: T0,
    readyAt: null,
    lastHeartbeatAt: null,
    agentVersion: null,
    agentUrl: null,
    activeTasks: [],
    providerTimings: [],
    bootTimeline: null,
    lastMetrics: null,
    ...over,
  });

describe("boot waterfall", () => {
  test("provider spans come first, then phases in start order, on one axis proportional to durations", () => {
    const w = bootWaterfall(node({
      providerTimings: [
        { name: "create_call", at: T0 },
        { name: "action_done", at: T0 + 5_000 },
        { name: "server_running", at: T0 + 20_000 },
        { name: "agent_ready", at: T0 + 100_000 },
      ],
      bootTimeline: {
        source: "journald",
        kernelUptimeMsAtAgentStart: null,
        agentStartedAt: T0 + 95_000,
        phases: [
          { name: "node-install", startedAt: T0 + 40_000, endedAt: T0 + 80_000, durationMs: 40_000, status: "ok" },
          { name: "docker-start", startedAt: T0 + 30_000, endedAt: T0 + 40_000, durationMs: 10_000, status: "ok" },
        ],
      },
    }))!;
    expect(w.spanMs).toBe(100_000);
    expect(w.rows.map((r) => r.label)).toEqual([
      "create call → server running",
      "server running → agent ready",
      "docker-start",
      "node-install",
    ]);
    expect(w.rows.map((r) => [r.left, r.width])).toEqual([[0, 20], [20, 80], [30, 10], [40, 40]]);
  });

  test("an unterminated phase runs to the axis end with no duration; a failed one keeps its status", () => {
    const w = bootWaterfall(node({
      bootTimeline: {
        source: "syslog",
        kernelUptimeMsAtAgentStart: 10_000,
        agentStartedAt: T0 + 10_000,
        phases: [
          { name: "tls", startedAt: T0 + 2_000, endedAt: T0 + 4_000, durationMs: 2_000, status: "failed" },
          { name: "pull", startedAt: T0 + 5_000, endedAt: null, durationMs: null, status: "unterminated" },
        ],
      },
    }))!;
    const [kernel, tls, pull] = w.rows;
    expect(kernel).toMatchObject({ kind: "machine", left: 0, width: 100, durationMs: 10_000 });
    expect(tls).toMatchObject({ status: "failed", left: 20, width: 20 });
    expect(pull).toMatchObject({ status: "unterminated", durationMs: null, left: 50, width: 50 });
  });

  test("a node that reported nothing has no waterfall", () => {
    expect(bootWaterfall(node())).toBeNull();
  });

  test("ticks are round, start at 0 and never exceed six", () => {
    for (const span of [800, 9_000, 61_000, 720_000, 5 * 3_600_000, 30 * 3_600_000]) {
      const ticks = axisTicks(span);
      expect(ticks[0]).toEqual({ offsetMs: 0, left: 0 });
      expect(ticks.length).toBeLessThanOrEqual(7);
      expect(ticks.at(-1)!.offsetMs).toBeLessThanOrEqual(span);
    }
  });
});
