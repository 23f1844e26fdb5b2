/** A caller of a served edge's JSON API as curl would be. */

export type ApiCallOptions = {
  /** The bearer token: the admin's when left out, none at all when null. */
  token?: string | null;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as it is (a malformed body, say). */
  raw?: string;
  headers?: Record<string, string>;
};

export type ApiCall = (method: string, path: string, o?: ApiCallOptions) => Promise<Response>;

export function edgeApiCall(url: string, adminToken: string): ApiCall {
  return (method, path, o = {}) => {
    const token = o.token === undefined ? adminToken : o.token;
    const headers: Record<string, string> = { ...o.headers };
    if (token !== null) headers.Authorization = `Bearer ${token}`;
    let body = o.raw;
    if (o.body !== undefined) {
      body = JSON.stringify(o.body);
      headers["Content-Type"] = "application/json";
    }
    return fetch(`${url}${path}`, { method, headers, body });
  };
}
