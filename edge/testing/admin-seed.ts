/**
 * Seeded nodes, metrics, events and tasks for the admin pages' tests, every one validated with the wire
 * schemas the edge API promises — so the fake cannot serve a shape the real API would not.
 */
import * as v from "valibot";
import { NodeView, TaskEventView, TaskView } from "../../shared/wire/api.ts";
import { NodeEvent } from "../../shared/wire/events.ts";
import { MetricsSample } from "../../shared/wire/metrics.ts";

export const GiB = 1024 ** 3;

/** Boot phases of the healthy node: offsets and durations (s) from the create call, in start order. */
export const BOOT_PHASES = [
  { name: "docker-start", start: 40, duration: 8 },
  { name: "firewall", start: 48, duration: 4 },
  { name: "node-install", start: 52, duration: 90 },
  { name: "devcontainer-cli", start: 142, duration: 45 },
  { name: "docker-restart", start: 187, duration: 12 },
  { name: "agent-start", start: 199, duration: 6 },
] as const;

export function sample(at: number, i: number): MetricsSample {
  return v.parse(MetricsSample, {
    at,
    cpuPercent: i === 0 ? null : 20 + 15 * Math.sin(i / 5),
    load1: 0.5,
    load5: 0.4,
    load15: 0.3,
    memTotalBytes: 8 * GiB,
    memUsedBytes: Math.round((2.5 + Math.cos(i / 7)) * GiB),
    swapTotalBytes: 0,
    swapUsedBytes: 0,
    disk: {
      path: "/",
      totalBytes: 80 * GiB,
      usedBytes: Math.round((30 + i / 100) * GiB),
      freeBytes: Math.round((50 - i / 100) * GiB),
    },
  });
}

export function seedNodes(now: number): NodeView[] {
  const created = now - 3 * 3_600_000;
  const at = (s: number) => created + s * 1000;
  const base = {
    statusReason: null,
    ipv4: "203.0.113.7",
    ownerKeyId: "key_1",
    agentVersion: "0.1.0",
    activeTasks: [] as string[],
    providerTimings: [],
    bootTimeline: null,
    lastMetrics: null,
  };
  return [
    {
      ...base,
      id: "node-ok",
      status: "ready",
      health: "healthy",
      provider: "hetzner",
      providerServerId: "4711",
      createdAt: created,
      readyAt: at(210),
      lastHeartbeatAt: now - 12_000,
      agentUrl: "https://203.0.113.7:8443",
      activeTasks: ["task-run"],
      providerTimings: [
        { name: "create_call", at: at(0) },
        { name: "action_done", at: at(4) },
        { name: "server_running", at: at(30) },
        { name: "agent_ready", at: at(210) },
      ],
      bootTimeline: {
        source: "journald",
        kernelUptimeMsAtAgentStart: 170_000,
        agentStartedAt: at(205),
        phases: BOOT_PHASES.map((p) => ({
          name: p.name,
          startedAt: at(p.start),
          endedAt: at(p.start + p.duration),
          durationMs: p.duration * 1000,
          status: "ok",
        })),
      },
      lastMetrics: sample(now - 30_000, 59),
    },
    {
      ...base,
      id: "node-gone",
      status: "ready",
      health: "unhealthy",
      provider: "hetzner",
      providerServerId: "4712",
      createdAt: created,
      readyAt: at(300),
      lastHeartbeatAt: now - 25 * 60_000,
      agentUrl: "https://198.51.100.9:8443",
      providerTimings: [{ name: "create_call", at: at(0) }, { name: "server_running", at: at(25) }],
      bootTimeline: {
        source: "syslog",
        kernelUptimeMsAtAgentStart: null,
        agentStartedAt: at(290),
        phases: [
          { name: "docker-start", startedAt: at(40), endedAt: at(50), durationMs: 10_000, status: "ok" },
          { name: "tls", startedAt: at(60), endedAt: at(70), durationMs: 10_000, status: "failed" },
          { name: "image-pull", startedAt: at(70), endedAt: null, durationMs: null, status: "unterminated" },
        ],
      },
    },
  ].map((n) => v.parse(NodeView, n));
}

export function seedSamples(now: number, count = 60, stepMs = 60_000): MetricsSample[] {
  return Array.from({ length: count }, (_, i) => sample(now - (count - i) * stepMs, i));
}

export function seedNodeEvents(now: number, nodeId: string): NodeEvent[] {
  const rows = [
    { level: "info", type: "agent.start", message: "agent 0.1.0 started" },
    { level: "info", type: "boot.phase", message: "node-install took 90 s" },
    { level: "warn", type: "heartbeat.failed", message: "heartbeat failed: edge answered 503" },
    { level: "info", type: "heartbeat.sent", message: "heartbeat sent" },
    { level: "error", type: "error", message: "workspace cleanup failed: device busy" },
  ];
  return rows.map((r, i) =>
    v.parse(NodeEvent, {
      id: i + 1,
      at: now - (rows.length - i) * 60_000,
      nodeId,
      workspaceId: null,
      taskId: null,
      detail: null,
      ...r,
    })
  );
}

export function seedTasks(now: number): TaskView[] {
  const t0 = now - 20 * 60_000;
  const common = {
    repo: { url: "https://github.com/example/app.git", branch: "main" },
    agent: { type: "builtin" },
    model: null,
    labels: {},
    keyId: "key_1",
    nodeId: "node-ok",
  };
  return [
    {
      ...common,
      id: "task-done",
      status: "succeeded",
      prompt: "Fix the flaky test in parser.spec.ts",
      createdAt: t0,
      updatedAt: t0 + 600_000,
      transitions: [
        { status: "queued", at: t0, reason: null },
        { status: "provisioning", at: t0 + 1_000, reason: null },
        { status: "waiting_for_agent", at: t0 + 31_000, reason: null },
        { status: "dispatched", at: t0 + 211_000, reason: null },
        { status: "running", at: t0 + 212_000, reason: null },
        { status: "succeeded", at: t0 + 600_000, reason: null },
      ],
      phases: { queued: 1_000, provisioning: 30_000, boot: 180_000, dispatch: 1_000, run: 388_000 },
      result: {
        status: "succeeded",
        exitCode: 0,
        summary: "Fixed the race in the parser test.",
        diffStat: " parser.spec.ts | 4 ++--",
        steps: [],
        finishedAt: t0 + 600_000,
      },
      error: null,
    },
    {
      ...common,
      id: "task-run",
      status: "running",
      prompt: "Add a --json flag to the CLI",
      createdAt: now - 120_000,
      updatedAt: now - 60_000,
      transitions: [{ status: "queued", at: now - 120_000, reason: null }, {
        status: "dispatched",
        at: now - 61_000,
        reason: null,
      }, { status: "running", at: now - 60_000, reason: null }],
      phases: { queued: 59_000, provisioning: null, boot: null, dispatch: 1_000, run: null },
      result: null,
      error: null,
    },
  ].map((t) => v.parse(TaskView, t));
}

export function seedTaskEvents(task: TaskView): TaskEventView[] {
  const lines = task.id === "task-done"
    ? [
      "cloning https://github.com/example/app.git",
      "running tests",
      "1 failing",
      "patched parser.spec.ts",
      "all tests pass",
    ]
    : ["cloning https://github.com/example/app.git", "reading src/cli.ts"];
  const events: TaskEventView[] = task.transitions.map((t, i) => ({
    id: i,
    at: t.at,
    type: "status",
    status: t.status,
    message: t.reason ?? "",
  }));
  lines.forEach((message, i) =>
    events.push({ id: events.length, at: task.createdAt + 1000 * (i + 1), type: "log", stream: "stdout", message })
  );
  return events.map((e) => v.parse(TaskEventView, e));
}
