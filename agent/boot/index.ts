/** The boot timeline (docs/architecture.md § The agent): pure parsers and the reader. */
export {
  type BootMarker,
  type BootTimelineInput,
  buildBootTimeline,
  firstBootMarkers,
  journalBootId,
  normaliseBootId,
  parseJournalJson,
  parseSyslog,
} from "./markers.ts";
export {
  type BootSource,
  DEFAULT_JOURNAL_COMMAND,
  DEFAULT_SYSLOG_PATH,
  kernelBootId,
  kernelUptimeMs,
  readBootTimeline,
} from "./read.ts";
