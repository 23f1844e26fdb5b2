/**
 * A Hetzner Cloud API fake for tests (this machine cannot reach Hetzner): a small stateful HTTP server on an
 * ephemeral port that answers the calls SAM makes as Hetzner's OpenAPI description of 2026-07 says
 * (edge/providers/hetzner/testdata/hetzner-cloud.trimmed.spec.json; fake-api.test.ts there validates every answer against it): servers
 * with `location` and no `datacenter`, the required fields SAM never reads, null addresses where the spec
 * allows them, the error codes and statuses of the spec's table, `RateLimit-*` headers from a token bucket
 * (Reset = when the budget is full again) and `Link` headers on lists. Tests inject 429s, 5xxs, slow
 * answers, failing actions and broken 201s.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Buffer } from "node:buffer";

export type Fault =
  | { status: number; code?: string; message?: string; html?: boolean }
  | { delayMs: number }
  /** A 201 whose body carries the server's id but not a parseable server (a field of the wrong type). */
  | { brokenBody: true };

type FaultRule = { method: string; path: RegExp; fault: Fault; times: number };

type FakeAction = {
  id: number;
  command: string;
  status: "running" | "success" | "error";
  started: string;
  finished: string | null;
  resources: { id: number; type: string }[];
  error: { code: string; message: string } | null;
  pollsLeft: number;
};

export type FakeServer = {
  id: number;
  name: string;
  status: string;
  created: string;
  labels: Record<string, string>;
  serverType: string;
  location: string;
  image: string;
  userData: string;
  pollsUntilRunning: number;
  /** false: an IPv6-only server (`public_net.ipv4` is null), as a create with `enable_ipv4: false` makes. */
  ipv4: boolean;
};

export type RecordedRequest = {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  status: number;
};

export type HetznerFake = {
  url: string;
  servers: Map<number, FakeServer>;
  requests: RecordedRequest[];
  /** Put a server in the project (as if created earlier, e.g. by a crashed edge). */
  addServer(s: Partial<FakeServer> & { labels: Record<string, string> }): FakeServer;
  /** Answer the next `times` matching requests with a fault. */
  inject(method: string, path: RegExp, fault: Fault, times?: number): void;
  /** The next create's action ends in `error` with this code. */
  failNextCreateAction(code: string, message: string): void;
  /** Make the server exist (as if a create was applied) but answer this create with a fault. */
  applyThenFailNextCreate(fault: Fault): void;
  /** Spend the whole rate-limit budget, as a burst of other clients of the project would. */
  exhaustRateLimit(): void;
  /** Forget servers, actions, recorded requests and unused faults, and refill the budget (between tests). */
  reset(): void;
  close(): Promise<void>;
};

const SPEC_ERROR_CODE: Record<number, string> = {
  400: "json_error",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  409: "conflict",
  412: "resource_unavailable",
  422: "invalid_input",
  423: "locked",
  429: "rate_limit_exceeded",
  500: "server_error",
  502: "bad_gateway",
  503: "unavailable",
  504: "timeout",
};

const LOCATIONS: Record<
  string,
  {
    id: number;
    description: string;
    country: string;
    city: string;
    latitude: number;
    longitude: number;
    network_zone: string;
  }
> = {
  fsn1: {
    id: 1,
    description: "Falkenstein DC Park 1",
    country: "DE",
    city: "Falkenstein",
    latitude: 50.47612,
    longitude: 12.370071,
    network_zone: "eu-central",
  },
  nbg1: {
    id: 2,
    description: "Nuremberg DC Park 1",
    country: "DE",
    city: "Nuremberg",
    latitude: 49.452102,
    longitude: 11.076665,
    network_zone: "eu-central",
  },
  hel1: {
    id: 3,
    description: "Helsinki DC Park 1",
    country: "FI",
    city: "Helsinki",
    latitude: 60.169855,
    longitude: 24.938379,
    network_zone: "eu-central",
  },
};

const price = (net: string) => ({ net, gross: (Number(net) * 1.19).toFixed(4) });

function locationJson(name: string) {
  const l = LOCATIONS[name] ?? LOCATIONS.fsn1!;
  return {
    id: l.id,
    name: LOCATIONS[name] ? name : "fsn1",
    description: l.description,
    country: l.country,
    city: l.city,
    latitude: l.latitude,
    longitude: l.longitude,
    network_zone: l.network_zone,
  };
}

function serverTypeJson(name: string) {
  const arm = name.startsWith("cax");
  return {
    id: arm ? 45 : 104,
    name,
    description: name.toUpperCase(),
    cores: 2,
    memory: 4,
    disk: 40,
    deprecated: false,
    prices: Object.keys(LOCATIONS).map((location) => ({
      location,
      price_hourly: price("0.0060"),
      price_monthly: price("3.4900"),
      included_traffic: 21990232555520,
      price_per_tb_traffic: price("1.0000"),
    })),
    storage_type: "local",
    cpu_type: "shared",
    category: "cost_optimized",
    architecture: arm ? "arm" : "x86",
    deprecation: null,
    locations: Object.entries(LOCATIONS).map(([n, l]) => ({
      id: l.id,
      name: n,
      deprecation: null,
      available: true,
      recommended: n === "fsn1",
    })),
  };
}

function serverJson(s: FakeServer) {
  const ip = `203.0.113.${(s.id % 250) + 1}`;
  const booted = s.status !== "initializing";
  return {
    id: s.id,
    name: s.name,
    status: s.status,
    created: s.created,
    public_net: {
      ipv4: s.ipv4
        ? {
          id: 1000 + s.id,
          ip,
          blocked: false,
          dns_ptr: `static.${ip.split(".").reverse().join(".")}.clients.your-server.de`,
        }
        : null,
      // Reverse DNS for the IPv6 net is set up once the server is past `initializing`.
      ipv6: { id: 2000 + s.id, ip: `2001:db8:${s.id.toString(16)}::/64`, blocked: false, dns_ptr: booted ? [] : null },
      floating_ips: [],
      firewalls: [],
    },
    private_net: [],
    server_type: serverTypeJson(s.serverType),
    location: locationJson(s.location),
    image: {
      id: 114690387,
      type: "app",
      status: "available",
      name: s.image,
      description: "Docker CE",
      image_size: null,
      disk_size: 5,
      created: "2025-04-30T09:00:00Z",
      created_from: null,
      bound_to: null,
      os_flavor: "ubuntu",
      os_version: "24.04",
      rapid_deploy: true,
      protection: { delete: false },
      deprecated: null,
      deleted: null,
      labels: {},
      architecture: s.serverType.startsWith("cax") ? "arm" : "x86",
    },
    iso: null,
    rescue_enabled: false,
    locked: false,
    backup_window: null,
    outgoing_traffic: booted ? 0 : null,
    ingoing_traffic: booted ? 0 : null,
    included_traffic: 21990232555520,
    protection: { delete: false, rebuild: false },
    labels: s.labels,
    volumes: [],
    load_balancers: [],
    primary_disk_size: 40,
    placement_group: null,
  };
}

function actionJson(a: FakeAction) {
  const { pollsLeft: _, ...rest } = a;
  return { ...rest, progress: a.status === "running" ? 50 : 100 };
}

/** Hetzner's label selector: comma-separated terms `k`, `!k`, `k=v`, `k==v`, `k!=v`. */
function matchesSelector(labels: Record<string, string>, selector: string): boolean {
  return selector.split(",").map((t) => t.trim()).filter(Boolean).every((term) => {
    let m: RegExpExecArray | null;
    if ((m = /^!(.+)$/.exec(term))) return !(m[1]! in labels);
    if ((m = /^([^!=]+)!=(.*)$/.exec(term))) return labels[m[1]!] !== m[2];
    if ((m = /^([^!=]+)==?(.*)$/.exec(term))) return labels[m[1]!] === m[2];
    return term in labels;
  });
}

export async function startHetznerFake(
  opts: { token: string; actionPolls?: number; runningPolls?: number; rateLimitPerHour?: number },
): Promise<HetznerFake> {
  const servers = new Map<number, FakeServer>();
  const actions = new Map<number, FakeAction>();
  const requests: RecordedRequest[] = [];
  const faults: FaultRule[] = [];
  let nextId = 1;
  let createActionError: { code: string; message: string } | null = null;
  let applyThenFail: Fault | null = null;
  const pending = new Set<ServerResponse>();

  // The budget refills evenly: `limit` requests an hour, so `RateLimit-Reset` is when it is full again.
  const limit = opts.rateLimitPerHour ?? 3600;
  const msPerRequest = 3_600_000 / limit;
  let budget = limit;
  let budgetAt = Date.now();
  function refill(): void {
    const now = Date.now();
    budget = Math.min(limit, budget + (now - budgetAt) / msPerRequest);
    budgetAt = now;
  }
  function rateLimitHeaders(): Record<string, string> {
    return {
      "ratelimit-limit": String(limit),
      "ratelimit-remaining": String(Math.floor(budget)),
      "ratelimit-reset": String(Math.ceil((budgetAt + (limit - budget) * msPerRequest) / 1000)),
    };
  }

  function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}) {
    const last = requests[requests.length - 1];
    if (last) last.status = status;
    res.writeHead(status, { "content-type": "application/json", ...rateLimitHeaders(), ...extra });
    res.end(JSON.stringify(body));
  }
  const error = (res: ServerResponse, status: number, code: string, message: string, details: unknown = null) =>
    send(res, status, { error: { code, message, details } });

  function newAction(command: string, resource: number): FakeAction {
    const a: FakeAction = {
      id: nextId++,
      command,
      status: "running",
      started: new Date().toISOString(),
      finished: null,
      resources: [{ id: resource, type: "server" }],
      error: null,
      pollsLeft: opts.actionPolls ?? 1,
    };
    actions.set(a.id, a);
    return a;
  }

  function addServer(s: Partial<FakeServer> & { labels: Record<string, string> }): FakeServer {
    const id = s.id ?? nextId++;
    const server: FakeServer = {
      id,
      name: `server-${id}`,
      status: "running",
      created: new Date().toISOString(),
      serverType: "cx23",
      location: "fsn1",
      image: "docker-ce",
      userData: "",
      pollsUntilRunning: 0,
      ipv4: true,
      ...s,
    };
    servers.set(id, server);
    return server;
  }

  function applyFault(res: ServerResponse, fault: Fault, created?: FakeServer): void {
    if ("delayMs" in fault) {
      // A slow answer: hold the response past the client's timeout, then answer 504 like Hetzner's edge.
      pending.add(res);
      setTimeout(() => {
        pending.delete(res);
        if (!res.writableEnded) error(res, 504, "timeout", "request timed out");
      }, fault.delayMs).unref?.();
      return;
    }
    if ("brokenBody" in fault) {
      const body = created ? { ...serverJson(created), public_net: "unavailable" } : { id: 0 };
      return send(res, 201, { server: body, action: null, next_actions: [], root_password: null });
    }
    if (fault.html) {
      res.writeHead(fault.status, { "content-type": "text/html", ...rateLimitHeaders() });
      res.end("<html><body>502 Bad Gateway</body></html>");
      return;
    }
    if (fault.status === 429) budget = 0;
    const code = fault.code ?? SPEC_ERROR_CODE[fault.status] ?? "server_error";
    error(res, fault.status, code, fault.message ?? code.replace(/_/g, " "));
  }

  function invalid(res: ServerResponse, field: string, message: string) {
    error(res, 422, "invalid_input", `invalid input in field '${field}'`, {
      fields: [{ name: field, messages: [message] }],
    });
  }

  function createServerFromBody(body: Record<string, unknown>, res: ServerResponse): FakeServer | null {
    const name = body.name;
    if (typeof name !== "string" || !/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/i.test(name)) {
      invalid(res, "name", "name must be a valid hostname");
      return null;
    }
    for (const field of ["server_type", "image"]) {
      if (typeof body[field] !== "string" || body[field] === "") {
        invalid(res, field, "Missing data for required field.");
        return null;
      }
    }
    if (body.location !== undefined && !(String(body.location) in LOCATIONS)) {
      invalid(res, "location", "location not found");
      return null;
    }
    const labels = (body.labels ?? {}) as Record<string, string>;
    if (Object.keys(labels).some((k) => k.startsWith("hetzner.cloud/"))) {
      invalid(res, "labels", "label key prefix 'hetzner.cloud/' is reserved");
      return null;
    }
    const userData = typeof body.user_data === "string" ? body.user_data : "";
    if (new TextEncoder().encode(userData).length > 32 * 1024) {
      invalid(res, "user_data", "Longer than maximum length 32768.");
      return null;
    }
    if ([...servers.values()].some((s) => s.name === name)) {
      error(res, 409, "uniqueness_error", "server name is already used", { fields: [{ name: "name" }] });
      return null;
    }
    const publicNet = (body.public_net ?? {}) as { enable_ipv4?: boolean };
    return addServer({
      name,
      status: "initializing",
      labels,
      serverType: String(body.server_type),
      location: String(body.location ?? "fsn1"),
      image: String(body.image),
      userData,
      pollsUntilRunning: opts.runningPolls ?? 1,
      ipv4: publicNet.enable_ipv4 !== false,
    });
  }

  function listServers(url: URL, res: ServerResponse) {
    const selector = url.searchParams.get("label_selector");
    const page = Number(url.searchParams.get("page") ?? 1);
    const perPage = Number(url.searchParams.get("per_page") ?? 25);
    if (!Number.isInteger(page) || page < 1) return invalid(res, "page", "must be a positive integer");
    if (!Number.isInteger(perPage) || perPage < 1 || perPage > 50) {
      return invalid(res, "per_page", "must be between 1 and 50");
    }
    const all = [...servers.values()].filter((s) => !selector || matchesSelector(s.labels, selector));
    const lastPage = Math.max(1, Math.ceil(all.length / perPage));
    const slice = all.slice((page - 1) * perPage, page * perPage);
    const link = (p: number, rel: string) => {
      const u = new URL(url);
      u.searchParams.set("page", String(p));
      u.searchParams.set("per_page", String(perPage));
      return `<${u}>; rel="${rel}"`;
    };
    const links = [
      page > 1 ? link(page - 1, "prev") : null,
      page < lastPage ? link(page + 1, "next") : null,
      link(lastPage, "last"),
    ].filter(Boolean);
    send(res, 200, {
      servers: slice.map(serverJson),
      meta: {
        pagination: {
          page,
          per_page: perPage,
          previous_page: page > 1 ? page - 1 : null,
          next_page: page < lastPage ? page + 1 : null,
          last_page: lastPage,
          total_entries: all.length,
        },
      },
    }, { link: links.join(", ") });
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? "/", `http://${req.headers.host ?? "fake"}`);
    const path = url.pathname.replace(/^\/v1/, "");
    const method = req.method ?? "GET";
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString();
    let body: unknown = null;
    let badJson = false;
    if (raw) {
      try {
        body = JSON.parse(raw);
      } catch {
        badJson = true;
      }
    }
    requests.push({ method, path, query: Object.fromEntries(url.searchParams), body, status: 0 });
    if (req.headers.authorization !== `Bearer ${opts.token}`) {
      return error(res, 401, "unauthorized", "unable to authenticate");
    }

    refill();
    if (budget < 1) return error(res, 429, "rate_limit_exceeded", "limit of 3600 requests per hour reached");
    budget -= 1;

    if (badJson) return error(res, 400, "json_error", "invalid JSON in the request body");
    const rule = faults.find((f) => f.times > 0 && f.method === method && f.path.test(path));
    if (rule) {
      rule.times--;
      return applyFault(res, rule.fault);
    }

    let m: RegExpExecArray | null;
    if (method === "POST" && path === "/servers") {
      const s = createServerFromBody((body ?? {}) as Record<string, unknown>, res);
      if (!s) return;
      const action = newAction("create_server", s.id);
      if (createActionError) {
        action.status = "error";
        action.error = createActionError;
        action.finished = new Date().toISOString();
        createActionError = null;
      }
      if (applyThenFail) {
        const fault = applyThenFail;
        applyThenFail = null;
        return applyFault(res, fault, s);
      }
      const start = (body as { start_after_create?: boolean }).start_after_create !== false
        ? [actionJson(newAction("start_server", s.id))]
        : [];
      const keys = (body as { ssh_keys?: unknown[] }).ssh_keys ?? [];
      return send(res, 201, {
        server: serverJson(s),
        action: actionJson(action),
        next_actions: start,
        root_password: keys.length ? null : "YItygq1v3GYjjMomLaKc",
      });
    }
    if (method === "GET" && path === "/servers") return listServers(url, res);
    if ((m = /^\/servers\/(\d+)$/.exec(path))) {
      const s = servers.get(Number(m[1]));
      if (!s) return error(res, 404, "not_found", "server not found");
      if (method === "GET") {
        if (s.status !== "running" && s.pollsUntilRunning-- <= 0) s.status = "running";
        else if (s.status === "initializing") s.status = "starting";
        return send(res, 200, { server: serverJson(s) });
      }
      if (method === "DELETE") {
        servers.delete(s.id);
        return send(res, 200, { action: actionJson(newAction("delete_server", s.id)) });
      }
      return error(res, 405, "method_not_allowed", `${method} is not allowed here`);
    }
    if (method === "GET" && (m = /^\/actions\/(\d+)$/.exec(path))) {
      const a = actions.get(Number(m[1]));
      if (!a) return error(res, 404, "not_found", "action not found");
      if (a.status === "running" && a.pollsLeft-- <= 0) {
        a.status = "success";
        a.finished = new Date().toISOString();
      }
      return send(res, 200, { action: actionJson(a) });
    }
    return error(res, 404, "not_found", `no route ${method} ${path}`);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => error(res, 500, "server_error", "fake failed"));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/v1`,
    servers,
    requests,
    addServer,
    inject(method, path, fault, times = 1) {
      faults.push({ method, path, fault, times });
    },
    failNextCreateAction(code, message) {
      createActionError = { code, message };
    },
    applyThenFailNextCreate(fault) {
      applyThenFail = fault;
    },
    exhaustRateLimit() {
      refill();
      budget = 0;
    },
    reset() {
      servers.clear();
      actions.clear();
      requests.length = 0;
      faults.length = 0;
      createActionError = null;
      applyThenFail = null;
      budget = limit;
      budgetAt = Date.now();
    },
    async close() {
      for (const res of pending) res.destroy();
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
