/**
 * A valid `POST /api/agent/ready` body (docs/protocol.md) for tests that play an agent: a host-mode node with
 * no boot phases, overridden field by field.
 */
import type { AgentReady } from "../wire/agent.ts";

export function readyReport(nodeId: string, over: Partial<AgentReady> = {}): AgentReady {
  const now = Date.now();
  return {
    nodeId,
    version: "0.1.0",
    url: "http://127.0.0.1:9",
    startedAt: now,
    capabilities: {
      workspaceModes: ["host"],
      agents: ["builtin", "command"],
      maxConcurrentTasks: 2,
      arch: "x64",
      os: "linux",
    },
    bootTimeline: { source: "none", kernelUptimeMsAtAgentStart: null, agentStartedAt: now, phases: [] },
    ...over,
  };
}
