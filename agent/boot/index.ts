/** The boot timeline (docs/architecture.md § The agent): pure parsers and the reader. */
export { buildBootTimeline, firstBootMarkers, journalBootId, normaliseBootId, parseJournalJson, parseSyslog, type BootMarker, type BootTimelineInput } from "./markers.ts";
export { DEFAULT_JOURNAL_COMMAND, DEFAULT_SYSLOG_PATH, kernelBootId, kernelUptimeMs, readBootTimeline, type BootSource } from "./read.ts";
