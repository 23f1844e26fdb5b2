/** A caller of a served edge's JSON API as curl would be: a bearer token (the admin's unless given), a JSON body. */
export function edgeApiCall(url: string, defaultToken: string) {
  return (method: string, path: string, body?: unknown, token = defaultToken): Promise<Response> =>
    fetch(`${url}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
}
