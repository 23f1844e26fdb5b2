/** Query parameters of `/events` and `/metrics`, validated with valibot: a bad value is a 400 naming it. */
import * as v from "valibot";
import { EventLevel } from "../../shared/wire/events.ts";
import { Id } from "../../shared/wire/common.ts";
import { parseOrThrow } from "../../shared/validate.ts";

/** Epoch milliseconds, or an ISO 8601 time such as `2026-11-24T02:31:38Z`. */
function parseTime(text: string): number {
  if (/^\d{1,16}$/.test(text)) return Number(text);
  return /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : Number.NaN;
}

const Time = (name: string) =>
  v.pipe(
    v.string(),
    v.transform(parseTime),
    v.check((n) => Number.isFinite(n) && n >= 0, `${name} must be epoch milliseconds or an ISO 8601 time`),
  );

const Limit = (max: number, fallback: number) =>
  v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\d+$/, `limit must be an integer from 1 to ${max}`),
      v.transform(Number),
      v.minValue(1, `limit must be an integer from 1 to ${max}`),
      v.maxValue(max, `limit must be an integer from 1 to ${max}`),
    ),
    String(fallback),
  );

const EventsQuery = v.object({
  since: v.optional(Time("since")),
  until: v.optional(Time("until")),
  type: v.optional(
    v.pipe(v.string(), v.minLength(1, "type must not be empty"), v.maxLength(64, "type is at most 64 characters")),
  ),
  taskId: v.optional(Id),
  level: v.optional(
    v.pipe(v.string(), v.picklist(EventLevel.options, "level must be one of debug, info, warn, error")),
  ),
  limit: Limit(1000, 100),
  cursor: v.optional(v.pipe(
    v.string(),
    v.regex(/^\d{1,15}$/, "cursor must be the nextCursor of a previous page"),
    v.transform(Number),
  )),
});

const MetricsQuery = v.object({
  since: v.optional(Time("since")),
  until: v.optional(Time("until")),
  /** 7 days of one-minute samples. */
  limit: Limit(10_080, 1_440),
});

export function parseEventsQuery(q: Record<string, string>) {
  return parseOrThrow(EventsQuery, q, "invalid_query");
}

export function parseMetricsQuery(q: Record<string, string>) {
  return parseOrThrow(MetricsQuery, q, "invalid_query");
}
