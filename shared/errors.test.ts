import { expect, test } from "bun:test";
import * as v from "valibot";
import { ErrorBody, errorMessageOf, errorResponse, HttpError } from "./errors.ts";

test("errors render as the one JSON shape with a type derived from the status", async () => {
  const res = errorResponse(429, "slow down", { code: "rate_limited", headers: { "Retry-After": "3" } });
  expect(res.status).toBe(429);
  expect(res.headers.get("Retry-After")).toBe("3");
  const body = await res.json();
  expect(v.is(ErrorBody, body)).toBe(true);
  expect(body).toEqual({ error: { message: "slow down", type: "rate_limit_error", code: "rate_limited" } });
  expect(new HttpError(403, "no").type).toBe("permission_error");
  expect(new HttpError(418, "teapot").type).toBe("invalid_request_error");
  expect(new HttpError(500, "x").type).toBe("server_error");
});

test("errorMessageOf reads SAM's, OpenAI's and Cloudflare's error dialects, and nothing else", () => {
  expect(errorMessageOf(JSON.stringify({ error: { message: "bad", type: "x", code: null } }))).toBe("bad");
  expect(errorMessageOf(JSON.stringify({ error: "plain" }))).toBe("plain");
  expect(errorMessageOf(JSON.stringify({ error: [{ code: 2001, message: "from an array" }] }))).toBe("from an array");
  expect(
    errorMessageOf(JSON.stringify({ success: false, errors: [{ code: 7003, message: "No route" }], messages: [] })),
  ).toBe("No route");
  for (const text of ["not json", "null", "[]", JSON.stringify({ error: {} }), JSON.stringify({ ok: true }), ""]) {
    expect(errorMessageOf(text)).toBeNull();
  }
});
