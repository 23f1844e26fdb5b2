/**
 * The one file that touches hcloud-js (CommonJS, untyped): a small typed surface over the calls SAM uses,
 * with every failure turned into an `HcloudError` that keeps the HTTP status, Hetzner's `error.code` and the
 * rate-limit reset — hcloud-js's own error object drops the status, and throws a TypeError on a 5xx whose
 * body is not Hetzner's JSON (a proxy's HTML page), so its error interceptor is replaced here.
 */
import { createRequire } from "node:module";
import * as v from "valibot";

/** The parts of hcloud-js we call, typed. */
type AxiosLike = {
  interceptors: { response: { eject(id: number): void; use(ok: (r: AxiosResponseLike) => unknown, fail: (e: AxiosErrorLike) => unknown): number } };
};
type AxiosResponseLike = { status: number; headers: Record<string, string | undefined>; data: unknown };
type AxiosErrorLike = { response?: AxiosResponseLike; code?: string; message?: string };
type HcloudServerBuilder = {
  serverType(t: string): HcloudServerBuilder;
  location(l: string): HcloudServerBuilder;
  image(i: string): HcloudServerBuilder;
  userData(u: string): HcloudServerBuilder;
  labels(l: Record<string, string>): HcloudServerBuilder;
  sshKey(k: string): HcloudServerBuilder;
  startAfterCreate(s: boolean): HcloudServerBuilder;
  create(): Promise<{ server: unknown; action: unknown }>;
};
type HcloudClient = {
  axios: AxiosLike;
  servers: {
    build(name: string): HcloudServerBuilder;
    get(id: number): Promise<unknown>;
    delete(id: number): Promise<unknown>;
    list(params: Record<string, unknown>): Promise<{ servers: unknown[]; nextPage: number | null }>;
  };
  actions: { get(id: number): Promise<unknown> };
};
type HcloudModule = { Client: new (opts: { token: string; baseURL: string; timeout: number }) => HcloudClient };

const require = createRequire(import.meta.url);
const hcloud = require("hcloud-js") as HcloudModule;

/** A failed Hetzner call. `status` 0 means no HTTP answer (timeout, connection refused). */
export class HcloudError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** When the rate-limit window resets (epoch ms), from `RateLimit-Reset`. */
    readonly rateLimitResetAt: number | null = null,
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
}

// hcloud-js's response classes, validated for the fields we read (a boundary like any other).
const HcloudServer = v.object({
  id: v.number(),
  name: v.string(),
  status: v.string(),
  created: v.date(),
  publicNet: v.object({ ipv4: v.object({ ip: v.nullish(v.string()) }) }),
  labels: v.record(v.string(), v.string()),
});
export type HcloudServer = v.InferOutput<typeof HcloudServer>;

const HcloudAction = v.object({
  id: v.number(),
  status: v.picklist(["running", "success", "error"]),
  error: v.nullish(v.object({ code: v.string(), message: v.string() })),
});
export type HcloudAction = v.InferOutput<typeof HcloudAction>;

function parse<S extends v.GenericSchema>(schema: S, value: unknown, what: string): v.InferOutput<S> {
  const result = v.safeParse(schema, value);
  if (!result.success) throw new HcloudError(502, "invalid_response", `hetzner: unexpected ${what} in the API response`);
  return result.output;
}

const ErrorBody = v.object({ error: v.object({ code: v.string(), message: v.string() }) });

function toHcloudError(err: AxiosErrorLike): HcloudError {
  const res = err.response;
  if (!res) {
    const timedOut = err.code === "ECONNABORTED" || err.code === "ETIMEDOUT" || /timeout/i.test(err.message ?? "");
    return new HcloudError(0, timedOut ? "timeout" : "network_error", timedOut ? "hetzner: the API did not answer in time" : `hetzner: cannot reach the API (${err.code ?? "network error"})`);
  }
  const reset = Number(res.headers["ratelimit-reset"]);
  const resetAt = Number.isFinite(reset) && reset > 0 ? reset * 1000 : null;
  const body = v.safeParse(ErrorBody, res.data);
  if (body.success) return new HcloudError(res.status, body.output.error.code, `hetzner: ${body.output.error.message} (${body.output.error.code})`, resetAt);
  return new HcloudError(res.status, res.status >= 500 ? "service_error" : "unexpected_response", `hetzner: HTTP ${res.status} without an API error body`, resetAt);
}

export type CreateServerRequest = {
  name: string;
  serverType: string;
  location: string;
  image: string;
  userData: string;
  labels: Record<string, string>;
  sshKeys: string[];
};

export type HcloudApi = {
  createServer(req: CreateServerRequest): Promise<{ server: HcloudServer; action: HcloudAction }>;
  getServer(id: number): Promise<HcloudServer>;
  deleteServer(id: number): Promise<void>;
  /** One page of servers matching a label selector. */
  listServers(labelSelector: string, page: number, perPage: number): Promise<{ servers: HcloudServer[]; nextPage: number | null }>;
  getAction(id: number): Promise<HcloudAction>;
};

export function createHcloudApi(opts: { token: string; apiBase: string; timeoutMs: number }): HcloudApi {
  const client = new hcloud.Client({ token: opts.token, baseURL: `${opts.apiBase.replace(/\/+$/, "")}/`, timeout: opts.timeoutMs });
  // Replace hcloud-js's response interceptor (the first one registered, id 0) with one that keeps the status.
  client.axios.interceptors.response.eject(0);
  client.axios.interceptors.response.use((r) => r, (err) => Promise.reject(toHcloudError(err)));

  const call = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof HcloudError) throw err;
      throw new HcloudError(502, "invalid_response", `hetzner: unexpected API response (${(err as Error).message})`);
    }
  };

  return {
    async createServer(req) {
      const result = await call(() => {
        let b = client.servers.build(req.name).serverType(req.serverType).location(req.location).image(req.image)
          .userData(req.userData).labels(req.labels).startAfterCreate(true);
        for (const key of req.sshKeys) b = b.sshKey(key);
        return b.create();
      });
      return { server: parse(HcloudServer, result.server, "server"), action: parse(HcloudAction, result.action, "action") };
    },
    async getServer(id) {
      return parse(HcloudServer, await call(() => client.servers.get(id)), "server");
    },
    async deleteServer(id) {
      await call(() => client.servers.delete(id));
    },
    async listServers(labelSelector, page, perPage) {
      const list = await call(() => client.servers.list({ labelSelector, page, perPage }));
      return { servers: list.servers.map((s) => parse(HcloudServer, s, "server")), nextPage: list.nextPage ?? null };
    },
    async getAction(id) {
      return parse(HcloudAction, await call(() => client.actions.get(id)), "action");
    },
  };
}
