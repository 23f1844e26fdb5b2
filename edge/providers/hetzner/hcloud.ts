/**
 * A small fetch-based client for the Hetzner Cloud calls SAM makes (docs/hetzner.md says why it replaced
 * hcloud-js). Answers are read as JSON and validated with valibot schemas of what Hetzner sends today
 * (the OpenAPI description as of 2026-07: `server.location`, no `datacenter`; `public_net.ipv4`/`ipv6` may be
 * null), and only the fields SAM reads are required, so a field Hetzner removes that SAM never reads cannot
 * break a create. Every failure is an `HcloudError` carrying the HTTP status, Hetzner's `error.code` and the
 * rate-limit headers.
 */
import * as v from "valibot";

/** The `RateLimit-*` headers: the hourly budget, what is left of it, and when it is full again (epoch ms). */
export type RateLimit = { limit: number; remaining: number; resetAt: number };

/** A failed Hetzner call. `status` 0 means no HTTP answer (timeout, connection refused). */
export class HcloudError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly rateLimit: RateLimit | null = null,
  ) {
    super(message);
    this.name = "HcloudError";
  }

  /** 429, 5xx and no-answer are worth retrying; anything else is an answer. */
  get transient(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }

  /** A 5xx or no answer may have been applied anyway (e.g. a create that timed out after the server was made). */
  get ambiguous(): boolean {
    return this.status === 0 || this.status >= 500;
  }

  /**
   * After a 429, how long until one request is allowed again. `RateLimit-Reset` is when the whole budget has
   * recovered, and the budget refills evenly (3600/h: one a second), so one request costs
   * (reset − now) / (limit − remaining) — not the hour until the reset.
   */
  msUntilOneRequest(now: number): number | null {
    const r = this.rateLimit;
    if (!r || r.resetAt <= now) return null;
    return Math.ceil((r.resetAt - now) / Math.max(1, r.limit - r.remaining));
  }
}

const Timestamp = v.pipe(
  v.string(),
  v.transform((s) => Date.parse(s)),
  v.check((ms) => Number.isFinite(ms), "must be an RFC 3339 timestamp"),
);

/** A server as SAM reads it, with the addresses nullable as the description of 2026-07 says. */
const HcloudServer = v.object({
  id: v.number(),
  name: v.string(),
  status: v.string(),
  created: Timestamp,
  public_net: v.object({
    ipv4: v.nullable(v.object({ ip: v.string() })),
    ipv6: v.nullable(
      v.object({ ip: v.string(), dns_ptr: v.nullish(v.array(v.object({ ip: v.string(), dns_ptr: v.string() }))) }),
    ),
  }),
  labels: v.record(v.string(), v.string()),
});
export type HcloudServer = v.InferOutput<typeof HcloudServer>;

const HcloudAction = v.object({
  id: v.number(),
  status: v.picklist(["running", "success", "error"]),
  error: v.nullable(v.object({ code: v.string(), message: v.string() })),
});
export type HcloudAction = v.InferOutput<typeof HcloudAction>;

/** The least a create's 201 must carry: the new server's id, read before anything else can fail. */
const CreatedId = v.object({ server: v.object({ id: v.number() }) });
const Created = v.object({ server: HcloudServer, action: HcloudAction });
const ServerBody = v.object({ server: HcloudServer });
const ActionBody = v.object({ action: HcloudAction });
const ListBody = v.object({
  servers: v.array(HcloudServer),
  meta: v.optional(v.object({ pagination: v.object({ page: v.number(), next_page: v.nullable(v.number()) }) })),
});
const ErrorBody = v.object({ error: v.object({ code: v.string(), message: v.string() }) });

function parse<S extends v.GenericSchema>(schema: S, value: unknown, what: string): v.InferOutput<S> {
  const result = v.safeParse(schema, value);
  if (result.success) return result.output;
  const issue = result.issues[0];
  // The path names the field, never its value (a create's answer carries the root password).
  throw new HcloudError(
    502,
    "invalid_response",
    `hetzner: unexpected ${what} in the API response (${v.getDotPath(issue) ?? "body"}: ${issue.message})`,
  );
}

function rateLimitOf(headers: Headers): RateLimit | null {
  const limit = Number(headers.get("ratelimit-limit"));
  const remaining = Number(headers.get("ratelimit-remaining"));
  const reset = Number(headers.get("ratelimit-reset"));
  if (!headers.has("ratelimit-reset") || !Number.isFinite(reset) || reset <= 0) return null;
  return {
    limit: Number.isFinite(limit) && limit > 0 ? limit : 1,
    remaining: Number.isFinite(remaining) ? remaining : 0,
    resetAt: reset * 1000,
  };
}

/** The page after `page`: from `meta.pagination`, else the `Link` header's rel="next". */
function nextPage(
  page: number,
  meta: { pagination: { next_page: number | null } } | undefined,
  link: string | null,
): number | null {
  let next = meta ? meta.pagination.next_page : null;
  if (!meta && link) {
    const m = /<([^>]+)>;\s*rel="next"/.exec(link);
    if (m) next = Number(new URL(m[1]!, "http://x").searchParams.get("page"));
  }
  // A page that does not move forward would loop forever (a mock answering the same page to every request).
  return next !== null && Number.isInteger(next) && next > page ? next : null;
}

export type CreateServerRequest = {
  name: string;
  serverType: string;
  location: string;
  image: string;
  userData: string;
  labels: Record<string, string>;
};

/** A create Hetzner accepted: the id at once, the rest parsed on demand (it may not parse). */
export type CreatedServer = { id: number; details(): { server: HcloudServer; action: HcloudAction | null } };

export type HcloudApi = {
  createServer(req: CreateServerRequest): Promise<CreatedServer>;
  getServer(id: number): Promise<HcloudServer>;
  deleteServer(id: number): Promise<void>;
  /** One page of servers matching a label selector. */
  listServers(
    labelSelector: string,
    page: number,
    perPage: number,
  ): Promise<{ servers: HcloudServer[]; nextPage: number | null }>;
  getAction(id: number): Promise<HcloudAction>;
};

export type HcloudApiOptions = { token: string; apiBase: string; timeoutMs: number; fetch?: typeof fetch };

export function createHcloudApi(opts: HcloudApiOptions): HcloudApi {
  const base = opts.apiBase.replace(/\/+$/, "");
  const fetchFn = opts.fetch ?? fetch;

  async function call(method: string, path: string, body?: unknown): Promise<{ json: unknown; headers: Headers }> {
    let res: Response;
    let text: string;
    try {
      res = await fetchFn(`${base}${path}`, {
        method,
        headers: {
          Authorization: `Bearer ${opts.token}`,
          Accept: "application/json",
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(opts.timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      const timedOut = (err as Error).name === "TimeoutError" || (err as Error).name === "AbortError";
      throw new HcloudError(
        0,
        timedOut ? "timeout" : "network_error",
        timedOut
          ? "hetzner: the API did not answer in time"
          : `hetzner: cannot reach the API (${(err as Error).message})`,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const rateLimit = rateLimitOf(res.headers);
      const e = v.safeParse(ErrorBody, json);
      if (e.success) {
        throw new HcloudError(
          res.status,
          e.output.error.code,
          `hetzner: ${e.output.error.message} (${e.output.error.code})`,
          rateLimit,
        );
      }
      throw new HcloudError(
        res.status,
        res.status >= 500 ? "server_error" : "unexpected_response",
        `hetzner: HTTP ${res.status} without an API error body`,
        rateLimit,
      );
    }
    if (json === undefined) {
      throw new HcloudError(502, "invalid_response", `hetzner: ${method} ${path} answered ${res.status} without JSON`);
    }
    return { json, headers: res.headers };
  }

  return {
    async createServer(req) {
      const { json } = await call("POST", "/servers", {
        name: req.name,
        server_type: req.serverType,
        location: req.location,
        image: req.image,
        user_data: req.userData,
        labels: req.labels,
        start_after_create: true,
      });
      const id = parse(CreatedId, json, "create answer").server.id;
      return { id, details: () => parse(Created, json, "create answer") };
    },
    async getServer(id) {
      return parse(ServerBody, (await call("GET", `/servers/${id}`)).json, "server").server;
    },
    async deleteServer(id) {
      await call("DELETE", `/servers/${id}`);
    },
    async listServers(labelSelector, page, perPage) {
      const query = new URLSearchParams({
        label_selector: labelSelector,
        page: String(page),
        per_page: String(perPage),
      });
      const { json, headers } = await call("GET", `/servers?${query}`);
      const list = parse(ListBody, json, "server list");
      return { servers: list.servers, nextPage: nextPage(page, list.meta, headers.get("link")) };
    },
    async getAction(id) {
      return parse(ActionBody, (await call("GET", `/actions/${id}`)).json, "action").action;
    },
  };
}
