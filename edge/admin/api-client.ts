/**
 * How the admin pages read the edge's own JSON API: in-process calls (`app.request` with the admin bearer),
 * answers validated with the very schemas the API promises, failures kept as data so a page can show
 * "node unreachable" instead of failing as a whole.
 */
import * as v from "valibot";
import { errorMessageOf, HttpError } from "../../shared/errors.ts";

/** One call of the edge's JSON API, already authenticated as the admin. */
export type AdminApi = (path: string, init?: RequestInit) => Response | Promise<Response>;

export type ApiFailure = { status: number; message: string };
export type ApiResult<T> = { ok: true; data: T } | { ok: false; failure: ApiFailure };

/** The `{ error: { message } }` of a failed answer, or a plain description when the body is not one. */
export async function failureOf(res: Response): Promise<ApiFailure> {
  const message = errorMessageOf(await res.text().catch(() => ""));
  return { status: res.status, message: message ?? `the edge API answered ${res.status}` };
}

export async function fetchView<S extends v.GenericSchema>(
  api: AdminApi,
  schema: S,
  path: string,
): Promise<ApiResult<v.InferOutput<S>>> {
  const res = await api(path, { headers: { Accept: "application/json" } });
  if (!res.ok) return { ok: false, failure: await failureOf(res) };
  const parsed = v.safeParse(schema, await res.json().catch(() => undefined));
  // A shape we do not understand is the edge's bug, not the operator's: say so without dumping the body.
  if (!parsed.success) throw new HttpError(502, `the edge API answered ${path.split("?")[0]} with an unexpected shape`);
  return { ok: true, data: parsed.output };
}

/** Like `fetchView`, but a failure becomes the page's own answer (404 for an unknown node, …). */
export async function requireView<S extends v.GenericSchema>(
  api: AdminApi,
  schema: S,
  path: string,
): Promise<v.InferOutput<S>> {
  const result = await fetchView(api, schema, path);
  if (!result.ok) throw new HttpError(result.failure.status, result.failure.message);
  return result.data;
}

/** Wraps an app's in-process `request` so every call carries the admin bearer (what the lead mounts). */
export function inProcessApi(
  app: { request: (path: string, init?: RequestInit) => Response | Promise<Response> },
  adminToken: string,
): AdminApi {
  return (path, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set("Authorization", `Bearer ${adminToken}`);
    return app.request(path, { ...init, headers });
  };
}
