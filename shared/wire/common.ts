/** Small building blocks the wire schemas share. */
import * as v from "valibot";

/** Milliseconds since the Unix epoch. */
export const EpochMs = v.pipe(v.number(), v.integer(), v.minValue(0));
export const Id = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 letters, digits, '_' or '-'"));
export const NonNegativeInt = v.pipe(v.number(), v.integer(), v.minValue(0));

/** Labels: a small string map, for users' own bookkeeping and provider labels. */
export const Labels = v.pipe(
  v.record(
    v.pipe(v.string(), v.regex(/^[a-z0-9][a-z0-9._-]{0,62}$/i, "label keys are 1-63 letters, digits, '.', '_' or '-'")),
    v.pipe(v.string(), v.maxLength(255)),
  ),
  v.check((r) => Object.keys(r).length <= 32, "at most 32 labels"),
);
