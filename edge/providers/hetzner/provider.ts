/**
 * The Hetzner provider: nodes as Hetzner Cloud servers booted with SAM's cloud-init. Rate limits and 5xx are
 * answered with backoff; a create that fails part-way deletes what it made (found by the node's label when
 * the failing answer never told us the server's id); delete is idempotent; `list` finds SAM's servers by
 * label so orphans can be reaped. The create records when the call went out, when Hetzner's create action
 * finished and when the server reported `running`.
 */
import * as v from "valibot";
import { renderCloudInit } from "../../../cloud-init/render.ts";
import type { Arch } from "../../../cloud-init/inputs.ts";
import type { CreateServerInput, Provider, ProviderServer, ProviderTiming, ServerStatus } from "../provider.ts";
import { createHcloudApi, HcloudError, type HcloudApi, type HcloudServer } from "./hcloud.ts";

/** Labels on every SAM server: `sam-node` marks it as ours, `sam-node-id` names the node. */
export const SAM_LABEL = "sam-node";
export const NODE_ID_LABEL = "sam-node-id";

export type HetznerProviderOptions = {
  token: string;
  apiBase: string;
  serverType: string;
  location: string;
  /** An image with Docker preinstalled (Hetzner's `docker-ce` app image by default). */
  image: string;
  agentDownloadUrl: string;
  agentSha256: string;
  baseImage: string;
  agentPort?: number;
  heartbeatSeconds?: number;
  /** A Node.js mirror laid out like nodejs.org/dist, and the npm registry (mirrors, air-gapped installs). */
  nodejsMirror?: string;
  npmRegistry?: string;
  /** OpenSSH public key lines for root (cloud-init), e.g. for debugging a node. */
  sshPublicKeys?: string[];
  /** Per-request timeout of an API call. */
  requestTimeoutMs?: number;
  /** How often the create polls its action and the server. */
  pollIntervalMs?: number;
  /** How long a create may take, call to `running`, before it is cleaned up as failed. */
  createDeadlineMs?: number;
  /** First backoff of a retry (doubles per attempt; `SAM_RETRY_BACKOFF`), the cap, and the attempts. */
  retry?: { baseMs: number; maxMs: number; attempts: number };
  now?: () => number;
};

/** Hetzner label values: ≤ 63 characters, alphanumeric at both ends. */
const LabelValue = v.pipe(v.string(), v.regex(/^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/, "must be a Hetzner label value (≤ 63 characters, letters, digits, '-', '_', '.', alphanumeric at both ends)"));
const LabelKey = v.pipe(v.string(), v.regex(/^(?:[a-z0-9.-]{1,253}\/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/, "must be a Hetzner label key"));

const CreateInput = v.object({
  nodeId: v.pipe(LabelValue, v.minLength(1, "must not be empty")),
  nodeToken: v.string(),
  /** docs/protocol.md: the edge mints it with the node token; the VM gets both in one 0600 file. */
  agentToken: v.pipe(v.string(), v.minLength(1, "agentToken is required: the edge must mint it with the node token (docs/protocol.md)")),
  controlPlaneUrl: v.string(),
  labels: v.record(LabelKey, LabelValue),
});

export class HetznerProviderError extends Error {
  constructor(message: string, readonly code: string, override readonly cause?: unknown) {
    super(message);
    this.name = "HetznerProviderError";
  }
}

const STATUS: Record<string, ServerStatus> = {
  initializing: "creating",
  starting: "starting",
  running: "running",
  stopping: "stopping",
  off: "off",
  deleting: "deleting",
};

function toProviderServer(s: HcloudServer): ProviderServer {
  return {
    id: String(s.id),
    nodeId: s.labels[NODE_ID_LABEL] ?? "",
    status: STATUS[s.status] ?? "unknown",
    ipv4: s.publicNet.ipv4.ip ?? null,
    createdAt: s.created.getTime(),
    labels: s.labels,
  };
}

/** A hostname Hetzner accepts: lower case, `_` → `-`, at most 63 characters. */
export function serverName(nodeId: string): string {
  return `sam-${nodeId.toLowerCase().replace(/[^a-z0-9-]/g, "-")}`.slice(0, 63).replace(/-+$/, "");
}

/** Hetzner's Arm servers are the `cax` family; everything else is x86. */
export function archOf(serverType: string): Arch {
  return serverType.toLowerCase().startsWith("cax") ? "arm64" : "amd64";
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function createHetznerProvider(opts: HetznerProviderOptions, api: HcloudApi = createHcloudApi({ token: opts.token, apiBase: opts.apiBase, timeoutMs: opts.requestTimeoutMs ?? 15_000 })): Provider {
  const now = opts.now ?? Date.now;
  const retry = opts.retry ?? { baseMs: 2_000, maxMs: 30_000, attempts: 6 };
  const pollMs = opts.pollIntervalMs ?? 1_000;
  const createDeadlineMs = opts.createDeadlineMs ?? 5 * 60_000;

  /** Wait before attempt `attempt + 1`: doubling from the base, or until the rate-limit window resets. */
  function backoff(err: HcloudError, attempt: number): number {
    const doubling = Math.min(retry.maxMs, retry.baseMs * 2 ** attempt);
    if (err.status === 429 && err.rateLimitResetAt !== null) return Math.min(retry.maxMs, Math.max(retry.baseMs, err.rateLimitResetAt - now()));
    return doubling;
  }

  /** Run `fn`, retrying transient failures; `beforeRetry` may settle an ambiguous failure instead. */
  async function withRetry<T>(fn: () => Promise<T>, beforeRetry?: (err: HcloudError) => Promise<T | undefined>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof HcloudError) || !err.transient || attempt + 1 >= retry.attempts) throw err;
        await sleep(backoff(err, attempt));
        if (beforeRetry && err.ambiguous) {
          const settled = await beforeRetry(err);
          if (settled !== undefined) return settled;
        }
      }
    }
  }

  async function listBySelector(selector: string): Promise<HcloudServer[]> {
    const out: HcloudServer[] = [];
    for (let page: number | null = 1; page !== null; ) {
      const p: number = page;
      const result = await withRetry(() => api.listServers(selector, p, 50));
      out.push(...result.servers);
      page = result.nextPage;
    }
    return out;
  }

  async function deleteById(id: number): Promise<void> {
    try {
      await withRetry(() => api.deleteServer(id));
    } catch (err) {
      if (err instanceof HcloudError && err.status === 404) return;
      throw err;
    }
  }

  /** Remove whatever a failed create left: the server we know of, and any other carrying the node's label. */
  async function cleanUp(nodeId: string, knownId: number | null): Promise<void> {
    try {
      if (knownId !== null) await deleteById(knownId);
      for (const s of await listBySelector(`${NODE_ID_LABEL}=${nodeId}`)) await deleteById(s.id);
    } catch {
      // Best effort: `list()` still shows the orphan by its label, so the reaper can finish the job.
    }
  }

  async function pollUntil<T>(deadline: number, what: string, step: () => Promise<T | undefined>): Promise<T> {
    for (;;) {
      const done = await withRetry(step);
      if (done !== undefined) return done;
      if (now() >= deadline) throw new HetznerProviderError(`hetzner: ${what} did not finish within ${Math.round(createDeadlineMs / 1000)} s`, "create_timeout");
      await sleep(pollMs);
    }
  }

  return {
    name: "hetzner",

    async create(input: CreateServerInput) {
      const parsed = v.safeParse(CreateInput, input);
      if (!parsed.success) {
        const issue = parsed.issues[0];
        throw new HetznerProviderError(`hetzner: ${v.getDotPath(issue) ?? "input"}: ${issue.message}`, "invalid_input");
      }
      const { nodeId, nodeToken, agentToken, controlPlaneUrl } = parsed.output;
      const userData = renderCloudInit({
        nodeId, controlPlaneUrl, nodeToken, agentToken,
        agentDownloadUrl: opts.agentDownloadUrl,
        agentSha256: opts.agentSha256,
        baseImage: opts.baseImage,
        arch: archOf(opts.serverType),
        sshKeys: opts.sshPublicKeys ?? [],
        agentPort: opts.agentPort,
        heartbeatSeconds: opts.heartbeatSeconds,
        nodejsMirror: opts.nodejsMirror,
        npmRegistry: opts.npmRegistry,
      });
      const labels = { ...parsed.output.labels, [SAM_LABEL]: "true", [NODE_ID_LABEL]: nodeId };
      const timings: ProviderTiming[] = [{ name: "create_call", at: now() }];
      const deadline = now() + createDeadlineMs;
      let serverId: number | null = null;
      try {
        const created = await withRetry(
          async () => {
            const r = await api.createServer({ name: serverName(nodeId), serverType: opts.serverType, location: opts.location, image: opts.image, userData, labels, sshKeys: [] });
            return { server: r.server, actionId: r.action.id as number | null };
          },
          // A 5xx or a timeout may have created the server anyway: adopt it rather than create a twin.
          async () => {
            const [existing] = await listBySelector(`${NODE_ID_LABEL}=${nodeId}`);
            return existing ? { server: existing, actionId: null } : undefined;
          },
        );
        serverId = created.server.id;
        timings.push({ name: "create_accepted", at: now() });
        if (created.actionId !== null) {
          const actionId = created.actionId;
          await pollUntil(deadline, "the create action", async () => {
            const action = await api.getAction(actionId);
            if (action.status === "error") {
              throw new HetznerProviderError(`hetzner: creating the server failed: ${action.error?.message ?? "unknown error"} (${action.error?.code ?? "error"})`, action.error?.code ?? "action_failed");
            }
            return action.status === "success" ? true : undefined;
          });
          timings.push({ name: "action_done", at: now() });
        }
        const id = serverId;
        const running = await pollUntil(deadline, "the server start", async () => {
          const s = await api.getServer(id);
          return s.status === "running" ? s : undefined;
        });
        timings.push({ name: "server_running", at: now() });
        return { server: toProviderServer(running), timings };
      } catch (err) {
        await cleanUp(nodeId, serverId);
        if (err instanceof HetznerProviderError) throw err;
        if (err instanceof HcloudError) throw new HetznerProviderError(err.message, err.code, err);
        throw err;
      }
    },

    async get(serverId) {
      if (!/^\d+$/.test(serverId)) return null;
      try {
        return toProviderServer(await withRetry(() => api.getServer(Number(serverId))));
      } catch (err) {
        if (err instanceof HcloudError && err.status === 404) return null;
        throw err;
      }
    },

    async delete(serverId) {
      if (!/^\d+$/.test(serverId)) return;
      await deleteById(Number(serverId));
    },

    async list() {
      return (await listBySelector(SAM_LABEL)).map(toProviderServer);
    },

    async close() {},
  };
}
