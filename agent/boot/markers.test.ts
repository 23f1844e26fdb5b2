import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import { BootTimeline } from "../../shared/wire/boot.ts";
import { buildBootTimeline, firstBootMarkers, parseJournalJson, parseSyslog } from "./index.ts";

// testdata/journal.json follows `journalctl -t sam-boot -o json` field for field (string µs timestamps,
// one object per line): a cloud-init run where the devcontainer CLI failed and TLS never finished.
const JOURNAL = readFileSync(join(import.meta.dir, "testdata", "journal.json"), "utf8");
const T0 = 1795919498000; // ms of the first marker

describe("parseJournalJson", () => {
  test("reads every marker of the captured journal, skipping other messages", () => {
    const markers = parseJournalJson(JOURNAL);
    expect(markers.length).toBe(11);
    expect(markers[0]).toEqual({ at: T0, kind: "start", name: "docker" });
    expect(markers[8]).toEqual({ at: T0 + 118_400, kind: "failed", name: "devcontainer-cli" });
  });

  test("skips other identifiers, garbage lines, and bad timestamps; decodes byte-array messages", () => {
    const bytes = [...new TextEncoder().encode("PHASE END: docker")];
    const text = [
      "-- No entries --",
      "{not json",
      JSON.stringify({ __REALTIME_TIMESTAMP: "1000000", SYSLOG_IDENTIFIER: "cron", MESSAGE: "PHASE START: x" }),
      JSON.stringify({
        __REALTIME_TIMESTAMP: 1000000,
        SYSLOG_IDENTIFIER: "sam-boot",
        MESSAGE: "PHASE START: numeric-ts",
      }),
      JSON.stringify({ __REALTIME_TIMESTAMP: "2000000", SYSLOG_IDENTIFIER: "sam-boot", MESSAGE: bytes }),
      JSON.stringify({ __REALTIME_TIMESTAMP: "3000000", SYSLOG_IDENTIFIER: "sam-boot", MESSAGE: "PHASE  START: y" }),
    ].join("\n");
    expect(parseJournalJson(text)).toEqual([{ at: 2000, kind: "end", name: "docker" }]);
  });
});

describe("parseSyslog", () => {
  test("traditional lines are local time in the given year; pid optional; other tags skipped", () => {
    const text = [
      "Nov 24 02:31:38 sam-node-1 sam-boot[123]: PHASE START: docker",
      "Nov 24 02:31:40 sam-node-1 dockerd[99]: PHASE END: docker",
      "Nov  4 02:31:41 sam-node-1 sam-boot: PHASE END: docker",
      "garbage",
    ].join("\n");
    expect(parseSyslog(text, 2026)).toEqual([
      { at: new Date(2026, 10, 24, 2, 31, 38).getTime(), kind: "start", name: "docker" },
      { at: new Date(2026, 10, 4, 2, 31, 41).getTime(), kind: "end", name: "docker" },
    ]);
  });

  test("RFC 3339 lines carry their own zone and microseconds", () => {
    const text = [
      "2026-11-24T02:31:38.123456+00:00 sam-node-1 sam-boot[123]: PHASE START: nodejs",
      "2026-11-24T03:32:40+01:00 sam-node-1 sam-boot[124]: PHASE END: nodejs",
      "2026-11-24T02:32:41Z sam-node-1 sam-boot[125]: PHASE FAILED: tls",
    ].join("\n");
    expect(parseSyslog(text, 1999)).toEqual([
      { at: Date.UTC(2026, 10, 24, 2, 31, 38, 123), kind: "start", name: "nodejs" },
      { at: Date.UTC(2026, 10, 24, 2, 32, 40), kind: "end", name: "nodejs" },
      { at: Date.UTC(2026, 10, 24, 2, 32, 41), kind: "failed", name: "tls" },
    ]);
  });
});

describe("buildBootTimeline", () => {
  test("pairs the captured journal into phases, flagging the failed and the unterminated", () => {
    const timeline = buildBootTimeline({
      source: "journald",
      markers: parseJournalJson(JOURNAL),
      kernelUptimeMsAtAgentStart: 140_000,
      agentStartedAt: T0 + 140_000,
    });
    expect(v.is(BootTimeline, timeline)).toBe(true);
    expect(timeline.phases.map((p) => [p.name, p.status, p.durationMs])).toEqual([
      ["docker", "ok", 2_500],
      ["firewall", "ok", 500],
      ["nodejs", "ok", 71_700],
      ["base-image-pull", "ok", 127_000],
      ["devcontainer-cli", "failed", 43_400],
      ["tls", "unterminated", null],
    ]);
    expect(timeline.phases[5]!.endedAt).toBeNull();
  });

  test("markers out of order are sorted; a restarted phase leaves the first one unterminated; stray END ignored", () => {
    const t = buildBootTimeline({
      source: "syslog",
      kernelUptimeMsAtAgentStart: null,
      agentStartedAt: 100,
      markers: [
        { at: 50, kind: "end", name: "b" },
        { at: 10, kind: "start", name: "b" },
        { at: 5, kind: "end", name: "never-started" },
        { at: 20, kind: "start", name: "a" },
        { at: 30, kind: "start", name: "a" },
        { at: 40, kind: "end", name: "a" },
        { at: 60, kind: "failed", name: "lonely" },
      ],
    });
    expect(t.phases).toEqual([
      { name: "b", startedAt: 10, endedAt: 50, durationMs: 40, status: "ok" },
      { name: "a", startedAt: 20, endedAt: null, durationMs: null, status: "unterminated" },
      { name: "a", startedAt: 30, endedAt: 40, durationMs: 10, status: "ok" },
      { name: "lonely", startedAt: 60, endedAt: 60, durationMs: 0, status: "failed" },
    ]);
  });

  test("no markers: an empty timeline that still validates", () => {
    const t = buildBootTimeline({ source: "none", markers: [], kernelUptimeMsAtAgentStart: 5, agentStartedAt: 1 });
    expect(v.is(BootTimeline, t)).toBe(true);
    expect(t.phases).toEqual([]);
  });

  test("a flood of markers is capped at the wire limit of 256 phases, long names cut to 128", () => {
    const long = "x".repeat(300);
    const markers = Array.from({ length: 400 }, (_, i) =>
      parseJournalJson(JSON.stringify({
        __REALTIME_TIMESTAMP: String(i * 1000),
        SYSLOG_IDENTIFIER: "sam-boot",
        MESSAGE: `PHASE START: ${long}${i}`,
      }))[0]!);
    const t = buildBootTimeline({ source: "journald", markers, kernelUptimeMsAtAgentStart: null, agentStartedAt: 1 });
    expect(t.phases.length).toBe(256);
    expect(t.phases[0]!.name.length).toBe(128);
    expect(v.is(BootTimeline, t)).toBe(true);
  });
});

describe("firstBootMarkers", () => {
  const entry = (boot: string, at: number, message: string) =>
    JSON.stringify({
      __REALTIME_TIMESTAMP: String(at * 1000),
      _BOOT_ID: boot,
      SYSLOG_IDENTIFIER: "sam-boot",
      MESSAGE: message,
    });

  test("after a reboot the node's timeline is still the first boot's, whatever the later boots logged", () => {
    // The second boot re-ran one phase by hand: the first boot's full run is still the one reported.
    const text = [
      entry("b2", 9_000, "PHASE START: docker-start"),
      entry("a1", 1_000, "PHASE START: docker-start"),
      entry("a1", 1_500, "PHASE END: docker-start"),
      entry("a1", 1_600, "PHASE START: tls"),
      entry("a1", 1_900, "PHASE END: tls"),
    ].join("\n");
    const { bootId, markers } = firstBootMarkers(text);
    expect(bootId).toBe("a1");
    expect(markers.map((m) => `${m.kind} ${m.name}`)).toEqual([
      "start docker-start",
      "end docker-start",
      "start tls",
      "end tls",
    ]);
  });

  test("a journal with no markers gives none; entries without a boot id count as one boot", () => {
    expect(firstBootMarkers("-- No entries --\n")).toEqual({ bootId: null, markers: [] });
    expect(firstBootMarkers(JOURNAL).markers.length).toBe(11);
  });
});
