import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readBootTimeline } from "./index.ts";

const JOURNAL_SAMPLE = join(import.meta.dir, "testdata", "journal.json");
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function syslogFile(text: string): string {
  const d = mkdtempSync(join(tmpdir(), "sam-boot-"));
  dirs.push(d);
  writeFileSync(join(d, "syslog"), text);
  return join(d, "syslog");
}
const base = { agentStartedAt: Date.UTC(2026, 10, 24, 3), kernelUptimeMs: 1234 };
const SYSLOG =
  "2026-11-24T02:31:38Z h sam-boot[1]: PHASE START: docker\n2026-11-24T02:31:40Z h sam-boot[1]: PHASE END: docker\n";

describe("readBootTimeline", () => {
  test("journald through the configured command", async () => {
    const t = await readBootTimeline({
      ...base,
      source: "auto",
      journalCommand: ["cat", JOURNAL_SAMPLE],
      syslogPath: "/nonexistent",
    });
    expect(t.source).toBe("journald");
    expect(t.phases.length).toBe(6);
    expect(t.kernelUptimeMsAtAgentStart).toBe(1234);
  });

  test("auto falls back to syslog when journalctl is missing or has no markers", async () => {
    const path = syslogFile(SYSLOG);
    const missing = await readBootTimeline({
      ...base,
      source: "auto",
      journalCommand: ["/nonexistent/journalctl"],
      syslogPath: path,
    });
    expect([missing.source, missing.phases.map((p) => p.durationMs)]).toEqual(["syslog", [2000]]);
    const empty = await readBootTimeline({ ...base, source: "auto", journalCommand: ["true"], syslogPath: path });
    expect(empty.source).toBe("syslog");
  });

  test("a failing command and no syslog give an empty timeline, not an error", async () => {
    const t = await readBootTimeline({
      ...base,
      source: "auto",
      journalCommand: ["false"],
      syslogPath: "/nonexistent",
    });
    expect([t.source, t.phases]).toEqual(["none", []]);
  });

  test("a hanging journal command is cut off at the timeout", async () => {
    const started = Date.now();
    const t = await readBootTimeline({
      ...base,
      source: "journald",
      journalCommand: ["sleep", "30"],
      syslogPath: "/x",
      timeoutMs: 200,
    });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(t.phases).toEqual([]);
  });

  test("SAM_BOOT_SOURCE=none reads nothing", async () => {
    const t = await readBootTimeline({
      ...base,
      source: "none",
      journalCommand: ["cat", JOURNAL_SAMPLE],
      syslogPath: syslogFile(SYSLOG),
    });
    expect([t.source, t.phases]).toEqual(["none", []]);
  });

  test("syslog only, when asked", async () => {
    const t = await readBootTimeline({
      ...base,
      source: "syslog",
      journalCommand: ["cat", JOURNAL_SAMPLE],
      syslogPath: syslogFile(SYSLOG),
    });
    expect([t.source, t.phases.length]).toEqual(["syslog", 1]);
  });
});

describe("readBootTimeline after a reboot", () => {
  test("reports the first boot's phases with its id, and the running boot's id beside them", async () => {
    const d = mkdtempSync(join(tmpdir(), "sam-boot-"));
    dirs.push(d);
    const line = (boot: string, at: number, message: string) =>
      JSON.stringify({
        __REALTIME_TIMESTAMP: String(at * 1000),
        _BOOT_ID: boot,
        SYSLOG_IDENTIFIER: "sam-boot",
        MESSAGE: message,
      });
    // Every boot's markers, as `journalctl -t sam-boot` without `-b` prints them; the second boot logged none.
    writeFileSync(
      join(d, "j.json"),
      [line("aa11", 1_000, "PHASE START: tls"), line("aa11", 1_400, "PHASE END: tls")].join("\n"),
    );
    const t = await readBootTimeline({
      ...base,
      source: "journald",
      journalCommand: ["cat", join(d, "j.json")],
      syslogPath: "/x",
      kernelBootId: "bb22-33",
    });
    expect(t.phases.map((p) => [p.name, p.status, p.durationMs])).toEqual([["tls", "ok", 400]]);
    expect([t.bootId, t.machineBootId]).toEqual(["aa11", "bb2233"]);
  });
});
