/** The boot timeline an agent reads from `sam-boot` markers and reports with its ready callback. */
import * as v from "valibot";
import { EpochMs, Id, NonNegativeInt } from "./common.ts";

export const BootPhase = v.object({
  name: v.pipe(v.string(), v.maxLength(128)),
  startedAt: EpochMs,
  endedAt: v.nullable(EpochMs),
  durationMs: v.nullable(NonNegativeInt),
  /** `failed`: a `PHASE FAILED` marker; `unterminated`: a start with no end. */
  status: v.picklist(["ok", "failed", "unterminated"]),
});
export type BootPhase = v.InferOutput<typeof BootPhase>;

export const BootTimeline = v.object({
  /** `live`: assembled by the edge from the boot's progress reports, before the agent reported its own. */
  source: v.picklist(["journald", "syslog", "none", "live"]),
  /** Kernel uptime when the agent started: how long the machine took to get to us. */
  kernelUptimeMsAtAgentStart: v.nullable(NonNegativeInt),
  agentStartedAt: EpochMs,
  /**
   * The machine boot these phases belong to (hex, no dashes): journald's `_BOOT_ID` of the markers, else the
   * kernel's `/proc/sys/kernel/random/boot_id`. Optional for agents that predate it.
   */
  bootId: v.optional(v.nullable(v.pipe(v.string(), v.regex(/^[0-9a-f]{1,64}$/)))),
  /**
   * The machine boot the agent runs in. The phases are the FIRST boot's (cloud-init runs once per instance),
   * so after a reboot this differs from `bootId`: the edge shows it as a reboot, not as a new boot.
   */
  machineBootId: v.optional(v.nullable(v.pipe(v.string(), v.regex(/^[0-9a-f]{1,64}$/)))),
  phases: v.pipe(v.array(BootPhase), v.maxLength(256)),
});
export type BootTimeline = v.InferOutput<typeof BootTimeline>;

/** `POST /api/agent/boot-progress`: one `sam-boot` marker, posted by the boot script as it happens. */
export const BootProgress = v.object({
  nodeId: Id,
  kind: v.picklist(["START", "END", "FAILED"]),
  phase: v.pipe(v.string(), v.regex(/^[a-z0-9][a-z0-9-]{0,127}$/, "phase must be a boot phase name like image-pull")),
  at: EpochMs,
});
export type BootProgress = v.InferOutput<typeof BootProgress>;
