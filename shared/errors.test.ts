import { expect, test } from "bun:test";
import * as v from "valibot";
import { ErrorBody, errorResponse, HttpError } from "./errors.ts";

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
