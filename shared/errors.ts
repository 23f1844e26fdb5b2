/**
 * The one JSON error shape every SAM HTTP surface answers with (docs/architecture.md § Identities):
 * `{ "error": { "message", "type", "code" } }` — the same shape OpenAI clients parse.
 */
import * as v from "valibot";

export const ErrorType = v.picklist([
  "invalid_request_error",
  "authentication_error",
  "permission_error",
  "not_found_error",
  "conflict_error",
  "rate_limit_error",
  "upstream_error",
  "unavailable_error",
  "server_error",
]);
export type ErrorType = v.InferOutput<typeof ErrorType>;

export const ErrorBody = v.object({
  error: v.object({
    message: v.string(),
    type: ErrorType,
    code: v.nullable(v.string()),
  }),
});
export type ErrorBody = v.InferOutput<typeof ErrorBody>;

/**
 * The message of an error body from SAM or a peer, whatever its dialect: `{error: {message}}` (SAM, OpenAI),
 * `{error: "…"}`, `{error: [{message}]}` or `{errors: [{message}]}` (Cloudflare). Null when there is none.
 */
export function errorMessageOf(text: string): string | null {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof body !== "object" || body === null) return null;
  const { error, errors } = body as { error?: unknown; errors?: unknown };
  const first = (x: unknown) => Array.isArray(x) ? x[0] : x;
  for (const candidate of [first(error), first(errors)]) {
    if (typeof candidate === "string" && candidate !== "") return candidate;
    const message = (candidate as { message?: unknown } | null | undefined)?.message;
    if (typeof message === "string" && message !== "") return message;
  }
  return null;
}

/** Default `type` for each status, so call sites name only what differs. */
const typeForStatus: Record<number, ErrorType> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  405: "invalid_request_error",
  409: "conflict_error",
  413: "invalid_request_error",
  415: "invalid_request_error",
  422: "invalid_request_error",
  429: "rate_limit_error",
  502: "upstream_error",
  503: "unavailable_error",
  504: "upstream_error",
};

export function errorTypeFor(status: number): ErrorType {
  return typeForStatus[status] ?? (status >= 500 ? "server_error" : "invalid_request_error");
}

export function errorBody(message: string, type: ErrorType, code: string | null = null): ErrorBody {
  return { error: { message, type, code } };
}

/** An error that knows its HTTP answer. Throw it anywhere below a route; the app's error handler renders it. */
export class HttpError extends Error {
  readonly status: number;
  readonly type: ErrorType;
  readonly code: string | null;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    message: string,
    opts: { code?: string | null; type?: ErrorType; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.type = opts.type ?? errorTypeFor(status);
    this.code = opts.code ?? null;
    this.headers = opts.headers ?? {};
  }

  toBody(): ErrorBody {
    return errorBody(this.message, this.type, this.code);
  }
}

/** A JSON error `Response` (Web standard), for code that answers without a framework. */
export function errorResponse(
  status: number,
  message: string,
  opts: { code?: string | null; type?: ErrorType; headers?: Record<string, string> } = {},
): Response {
  const err = new HttpError(status, message, opts);
  return Response.json(err.toBody(), { status, headers: err.headers });
}
