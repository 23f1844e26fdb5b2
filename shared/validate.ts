/**
 * Validation at an HTTP boundary: valibot issues become one 400 `HttpError` whose message names the
 * field ("repo.url: repo.url must be an http(s)…"), so a user can fix the request without guessing.
 */
import * as v from "valibot";
import { withinBodyDeadline } from "./body-deadline.ts";
import { HttpError } from "./errors.ts";

export function describeIssue(issue: v.BaseIssue<unknown>): string {
  const path = v.getDotPath(issue);
  return path ? `${path}: ${issue.message}` : issue.message;
}

/** Parse `value` with `schema`, or throw a 400 naming the first bad field. */
export function parseOrThrow<S extends v.GenericSchema>(
  schema: S,
  value: unknown,
  code = "invalid_request",
): v.InferOutput<S> {
  const result = v.safeParse(schema, value);
  if (result.success) return result.output;
  throw new HttpError(400, describeIssue(result.issues[0]), { code });
}

/** Read a request body as JSON; malformed JSON is the user's mistake, so it is a 400, not a 500. */
export async function readJsonBody(req: Request): Promise<unknown> {
  const text = await withinBodyDeadline(req, req.text());
  if (text.trim() === "") {
    throw new HttpError(400, "request body is empty; send a JSON object", { code: "invalid_json" });
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, "request body is not valid JSON", { code: "invalid_json" });
  }
}

/** JSON text parsed, or `undefined` when it is not JSON (for answers whose shape a schema checks next). */
export function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
