/**
 * A Hetzner Cloud API fake for tests (this machine cannot reach Hetzner): a small HTTP server on an ephemeral
 * port that answers the calls SAM makes with Hetzner's published shapes — servers (create/get/delete/list
 * with `label_selector` and pagination `meta`), actions, `{ error: { code, message, details } }` errors and
 * `RateLimit-*` headers on every answer. Tests inject 429s, 5xxs, slow answers and failing actions.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type Fault =
  | { status: number; code?: string; message?: string; html?: boolean }
  | { delayMs: number };

type FaultRule = { method: string; path: RegExp; fault: Fault; times: number };

type FakeAction = { id: number; command: string; status: "running" | "success" | "error"; started: string; finished: string | null; resources: { id: number; type: string }[]; error: { code: string; message: string } | null; pollsLeft: number };

type FakeServer = { id: number; name: string; status: string; created: string; labels: Record<string, string>; serverType: string; location: string; image: string; userData: string; pollsUntilRunning: number };

export type RecordedRequest = { method: string; path: string; query: Record<string, string>; body: unknown };

export type HetznerFake = {
  url: string;
  servers: Map<number, FakeServer>;
  requests: RecordedRequest[];
  /** Answer the next `times` matching requests with a fault. */
  inject(method: string, path: RegExp, fault: Fault, times?: number): void;
  /** The next create's action ends in `error` with this code. */
  failNextCreateAction(code: string, message: string): void;
  /** Make the server exist (as if a create was applied) but answer this create with a 5xx or a timeout. */
  applyThenFailNextCreate(fault: Fault): void;
  /** Forget servers, actions, recorded requests and unused faults (between tests). */
  reset(): void;
  close(): Promise<void>;
};

const PRICES = [{ location: "fsn1", price_hourly: { net: "0.0060", gross: "0.0071" }, price_monthly: { net: "3.7900", gross: "4.5101" } }];

function serverJson(s: FakeServer, index: number) {
  const ip = `203.0.113.${(s.id % 250) + 1}`;
  return {
    id: s.id,
    name: s.name,
    status: s.status,
    created: s.created,
    public_net: {
      ipv4: { id: 1000 + s.id, ip, blocked: false, dns_ptr: `static.${ip}.clients.your-server.de` },
      ipv6: { id: 2000 + s.id, ip: `2001:db8:${index}::/64`, blocked: false, dns_ptr: [] },
      floating_ips: [],
      firewalls: [],
    },
    private_net: [],
    server_type: { id: 22, name: s.serverType, description: s.serverType.toUpperCase(), cores: 2, memory: 4, disk: 40, deprecated: false, prices: PRICES, storage_type: "local", cpu_type: "shared", architecture: s.serverType.startsWith("cax") ? "arm" : "x86" },
    datacenter: {
      id: 4,
      name: `${s.location}-dc14`,
      description: "Falkenstein 1 virtual DC 14",
      location: { id: 1, name: s.location, description: "Falkenstein DC Park 1", country: "DE", city: "Falkenstein", latitude: 50.47612, longitude: 12.370071, network_zone: "eu-central" },
      server_types: { supported: [22], available: [22], available_for_migration: [22] },
    },
    image: { id: 4711, type: "app", status: "available", name: s.image, description: "Docker CE", image_size: null, disk_size: 5, created: "2024-01-01T00:00:00+00:00", created_from: null, bound_to: null, os_flavor: "ubuntu", os_version: "24.04", rapid_deploy: true, protection: { delete: false }, deprecated: null, labels: {}, architecture: "x86" },
    iso: null,
    rescue_enabled: false,
    locked: false,
    backup_window: null,
    outgoing_traffic: 0,
    ingoing_traffic: 0,
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

export async function startHetznerFake(opts: { token: string; actionPolls?: number; runningPolls?: number }): Promise<HetznerFake> {
  const servers = new Map<number, FakeServer>();
  const actions = new Map<number, FakeAction>();
  const requests: RecordedRequest[] = [];
  const faults: FaultRule[] = [];
  let nextId = 1;
  let remaining = 3600;
  let createActionError: { code: string; message: string } | null = null;
  let applyThenFail: Fault | null = null;
  const pending = new Set<ServerResponse>();

  function send(res: ServerResponse, status: number, body: unknown) {
    res.writeHead(status, {
      "content-type": "application/json",
      "ratelimit-limit": "3600",
      "ratelimit-remaining": String(Math.max(0, --remaining)),
      "ratelimit-reset": String(Math.floor(Date.now() / 1000) + 1),
    });
    res.end(JSON.stringify(body));
  }
  const error = (res: ServerResponse, status: number, code: string, message: string, details: unknown = null) =>
    send(res, status, { error: { code, message, details } });

  function newAction(command: string, resource: number): FakeAction {
    const a: FakeAction = { id: nextId++, command, status: "running", started: new Date().toISOString(), finished: null, resources: [{ id: resource, type: "server" }], error: null, pollsLeft: opts.actionPolls ?? 1 };
    actions.set(a.id, a);
    return a;
  }

  function applyFault(res: ServerResponse, fault: Fault): boolean {
    if ("delayMs" in fault) {
      // A slow answer: hold the response past the client's timeout, then answer 504 like Hetzner's edge.
      pending.add(res);
      setTimeout(() => {
        pending.delete(res);
        if (!res.writableEnded) error(res, 504, "timeout", "request timed out");
      }, fault.delayMs).unref?.();
      return true;
    }
    if (fault.html) {
      res.writeHead(fault.status, { "content-type": "text/html" });
      res.end("<html><body>502 Bad Gateway</body></html>");
      return true;
    }
    error(res, fault.status, fault.code ?? (fault.status === 429 ? "rate_limit_exceeded" : "service_error"), fault.message ?? (fault.status === 429 ? "rate limit exceeded" : "service error"));
    return true;
  }

  function createServerFromBody(body: Record<string, unknown>, res: ServerResponse): FakeServer | null {
    const name = body.name;
    if (typeof name !== "string" || !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(name)) {
      error(res, 400, "invalid_input", "invalid input in field 'name'", { fields: [{ name: "name", messages: ["name must be a valid hostname"] }] });
      return null;
    }
    for (const field of ["server_type", "image"]) {
      if (typeof body[field] !== "string" || body[field] === "") {
        error(res, 400, "invalid_input", `invalid input in field '${field}'`, { fields: [{ name: field, messages: ["Missing data for required field."] }] });
        return null;
      }
    }
    const userData = typeof body.user_data === "string" ? body.user_data : "";
    if (new TextEncoder().encode(userData).length > 32 * 1024) {
      error(res, 400, "invalid_input", "invalid input in field 'user_data'", { fields: [{ name: "user_data", messages: ["Longer than maximum length 32768."] }] });
      return null;
    }
    if ([...servers.values()].some((s) => s.name === name)) {
      error(res, 409, "uniqueness_error", "server name is already used", { fields: [{ name: "name" }] });
      return null;
    }
    const s: FakeServer = {
      id: nextId++, name, status: "initializing", created: new Date().toISOString(), labels: (body.labels as Record<string, string>) ?? {},
      serverType: String(body.server_type), location: String(body.location ?? "fsn1"), image: String(body.image), userData, pollsUntilRunning: opts.runningPolls ?? 1,
    };
    servers.set(s.id, s);
    return s;
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? "/", "http://fake");
    const path = url.pathname.replace(/^\/v1/, "");
    const method = req.method ?? "GET";
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString();
    let body: unknown = null;
    if (raw) {
      try {
        body = JSON.parse(raw);
      } catch {
        return error(res, 400, "json_error", "invalid JSON");
      }
    }
    requests.push({ method, path, query: Object.fromEntries(url.searchParams), body });

    if (req.headers.authorization !== `Bearer ${opts.token}`) return error(res, 401, "unauthorized", "unable to authenticate");

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
        return applyFault(res, fault);
      }
      return send(res, 201, { server: serverJson(s, 0), action: actionJson(action), next_actions: [], root_password: null });
    }
    if (method === "GET" && path === "/servers") {
      const selector = url.searchParams.get("label_selector");
      const page = Math.max(1, Number(url.searchParams.get("page") ?? 1));
      const perPage = Math.min(50, Math.max(1, Number(url.searchParams.get("per_page") ?? 25)));
      const all = [...servers.values()].filter((s) => !selector || matchesSelector(s.labels, selector));
      const lastPage = Math.max(1, Math.ceil(all.length / perPage));
      const slice = all.slice((page - 1) * perPage, page * perPage);
      return send(res, 200, {
        servers: slice.map((s, i) => serverJson(s, i)),
        meta: { pagination: { page, per_page: perPage, previous_page: page > 1 ? page - 1 : null, next_page: page < lastPage ? page + 1 : null, last_page: lastPage, total_entries: all.length } },
      });
    }
    if ((m = /^\/servers\/(\d+)$/.exec(path))) {
      const s = servers.get(Number(m[1]));
      if (!s) return error(res, 404, "not_found", "server not found");
      if (method === "GET") {
        if (s.status !== "running" && s.pollsUntilRunning-- <= 0) s.status = "running";
        else if (s.status === "initializing") s.status = "starting";
        return send(res, 200, { server: serverJson(s, 0) });
      }
      if (method === "DELETE") {
        servers.delete(s.id);
        return send(res, 200, { action: actionJson(newAction("delete_server", s.id)) });
      }
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
    handle(req, res).catch(() => error(res, 500, "service_error", "fake failed"));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/v1`,
    servers,
    requests,
    inject(method, path, fault, times = 1) {
      faults.push({ method, path, fault, times });
    },
    failNextCreateAction(code, message) {
      createActionError = { code, message };
    },
    applyThenFailNextCreate(fault) {
      applyThenFail = fault;
    },
    reset() {
      servers.clear();
      actions.clear();
      requests.length = 0;
      faults.length = 0;
      createActionError = null;
      applyThenFail = null;
    },
    async close() {
      for (const res of pending) res.destroy();
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
