/**
 * The Hetzner provider: nodes as Hetzner Cloud servers booted with SAM's cloud-init. Rate limits and 5xx are
 * answered with backoff (a 429 waits as long as the `RateLimit-*` headers say one request takes to come
 * back). A server SAM created is never lost track of: the id in the create's 201 is handed to the caller
 * before anything else can fail; a create whose follow-up fails deletes the server (404 = already gone) and
 * says whether it could confirm that; an ambiguous create (5xx, timeout) is only repeated after listing by
 * the node's label showed no server to adopt. `list` finds SAM's servers by label for the orphan reaper.
 */
import * as v from "valibot";
import { renderCloudInit } from "../../../cloud-init/render.ts";
import type { Arch } from "../../../cloud-init/inputs.ts";
import {
  type CreateServerInput,
  type Provider,
  ProviderCreateError,
  type ProviderServer,
  type ProviderTiming,
  type ServerStatus,
} from "../provider.ts";
import { type CreatedServer, createHcloudApi, type HcloudApi, HcloudError, type HcloudServer } from "./hcloud.ts";
import { REQUEST_TIMEOUTS, TIMER_BASES } from "../../../shared/timeouts.ts";

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
  /** Who the commits a node's agent pushes are by (`SAM_GIT_*` on the edge); the agent's default otherwise. */
  gitIdentity?: { authorName?: string; authorEmail?: string; committerName?: string; committerEmail?: string };
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
  /** How the provider waits between attempts and polls (tests record the waits). */
  sleep?: (ms: number) => Promise<void>;
};

/** Hetzner label values: ≤ 63 characters, alphanumeric at both ends. */
const LabelValue = v.pipe(
  v.string(),
  v.regex(
    /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/,
    "must be a Hetzner label value (≤ 63 characters, letters, digits, '-', '_', '.', alphanumeric at both ends)",
  ),
);
const LabelKey = v.pipe(
  v.string(),
  v.regex(/^(?:[a-z0-9.-]{1,253}\/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/, "must be a Hetzner label key"),
  v.check((k) => !k.startsWith("hetzner.cloud/"), "must not use the prefix 'hetzner.cloud/', which Hetzner reserves"),
);

const CreateInput = v.object({
  nodeId: v.pipe(LabelValue, v.minLength(1, "must not be empty")),
  nodeToken: v.string(),
  /** docs/protocol.md: the edge mints it with the node token; the VM gets both in one 0600 file. */
  agentToken: v.pipe(
    v.string(),
    v.minLength(1, "agentToken is required: the edge must mint it with the node token (docs/protocol.md)"),
  ),
  controlPlaneUrl: v.string(),
  labels: v.record(LabelKey, LabelValue),
});

export class HetznerProviderError extends ProviderCreateError {
  constructor(message: string, code: string, serverMayRemain = false, cause?: unknown) {
    super(message, code, serverMayRemain, cause);
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
    ipv4: s.public_net.ipv4?.ip ?? null,
    createdAt: s.created,
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

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function createHetznerProvider(
  opts: HetznerProviderOptions,
  api: HcloudApi = createHcloudApi({
    token: opts.token,
    apiBase: opts.apiBase,
    timeoutMs: opts.requestTimeoutMs ?? REQUEST_TIMEOUTS.hetznerRequest.ms,
  }),
): Provider {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? realSleep;
  const retry = opts.retry ??
    { baseMs: TIMER_BASES.retryBackoff.default, maxMs: REQUEST_TIMEOUTS.hetznerBackoffCap.ms, attempts: 6 };
  const pollMs = opts.pollIntervalMs ?? 1_000;
  const createDeadlineMs = opts.createDeadlineMs ?? REQUEST_TIMEOUTS.hetznerCreate.ms;

  /** Wait before attempt `attempt + 1`: doubling from the base; after a 429 at least until one request is back. */
  function backoff(err: HcloudError, attempt: number): number {
    const doubling = Math.min(retry.maxMs, retry.baseMs * 2 ** attempt);
    const refill = err.status === 429 ? err.msUntilOneRequest(now()) : null;
    return refill === null ? doubling : Math.min(retry.maxMs, Math.max(doubling, refill));
  }

  /** Run `fn`, retrying transient failures; `beforeRetry` may settle an ambiguous failure instead. */
  async function withRetry<T>(
    fn: () => Promise<T>,
    beforeRetry?: (err: HcloudError) => Promise<T | undefined>,
  ): Promise<T> {
    for (let attempt = 0;; attempt++) {
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

  /** Servers matching a selector, across pages; only those carrying SAM's label, whatever the API filtered. */
  async function listBySelector(selector: string): Promise<HcloudServer[]> {
    const out: HcloudServer[] = [];
    for (let page: number | null = 1, pages = 0; page !== null && pages < 200; pages++) {
      const p: number = page;
      const result = await withRetry(() => api.listServers(selector, p, 50));
      out.push(...result.servers.filter((s) => s.labels[SAM_LABEL] === "true"));
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

  /**
   * Remove whatever a failed create left: the server we know of, and any other carrying the node's label.
   * True when nothing is left; false when a delete or the listing failed (the orphan reaper finishes it).
   */
  async function cleanUp(nodeId: string, knownId: number | null): Promise<boolean> {
    try {
      if (knownId !== null) await deleteById(knownId);
      for (const s of await listBySelector(`${NODE_ID_LABEL}=${nodeId}`)) {
        if (s.id !== knownId && s.status !== "deleting") await deleteById(s.id);
      }
      return true;
    } catch {
      return false;
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
        nodeId,
        controlPlaneUrl,
        nodeToken,
        agentToken,
        agentDownloadUrl: opts.agentDownloadUrl,
        agentSha256: opts.agentSha256,
        baseImage: opts.baseImage,
        arch: archOf(opts.serverType),
        sshKeys: opts.sshPublicKeys ?? [],
        agentPort: opts.agentPort,
        heartbeatSeconds: opts.heartbeatSeconds,
        nodejsMirror: opts.nodejsMirror,
        npmRegistry: opts.npmRegistry,
        gitIdentity: opts.gitIdentity,
      });
      const labels = { ...parsed.output.labels, [SAM_LABEL]: "true", [NODE_ID_LABEL]: nodeId };
      const timings: ProviderTiming[] = [{ name: "create_call", at: now() }];
      const deadline = now() + createDeadlineMs;
      let serverId: number | null = null;
      try {
        const created = await withRetry<CreatedServer>(
          () =>
            api.createServer({
              name: serverName(nodeId),
              serverType: opts.serverType,
              location: opts.location,
              image: opts.image,
              userData,
              labels,
            }),
          // A 5xx or a timeout may have created the server anyway: adopt it rather than create a twin. When
          // this listing fails, the create is not repeated (the error ends it, and the clean-up takes over).
          async () => {
            const [existing] = await listBySelector(`${NODE_ID_LABEL}=${nodeId}`);
            return existing ? { id: existing.id, details: () => ({ server: existing, action: null }) } : undefined;
          },
        );
        serverId = created.id;
        await input.onServerCreated?.(String(created.id));
        timings.push({ name: "create_accepted", at: now() });
        let action = created.details().action;
        // Poll the action (for its error) and the server (for `running`) together: a running server means
        // the create finished, whatever the action still says.
        for (;;) {
          if (action?.status === "running") {
            const actionId = action.id;
            action = await withRetry(() => api.getAction(actionId));
          }
          if (action?.status === "error") {
            throw new HetznerProviderError(
              `hetzner: creating the server failed: ${action.error?.message ?? "unknown error"} (${
                action.error?.code ?? "error"
              })`,
              action.error?.code ?? "action_failed",
            );
          }
          if (action?.status === "success" && !timings.some((t) => t.name === "action_done")) {
            timings.push({ name: "action_done", at: now() });
          }
          const server = await withRetry(() => api.getServer(created.id));
          if (server.status === "running") {
            timings.push({ name: "server_running", at: now() });
            return { server: toProviderServer(server), timings };
          }
          if (now() >= deadline) {
            throw new HetznerProviderError(
              `hetzner: the server did not reach running within ${Math.round(createDeadlineMs / 1000)} s`,
              "create_timeout",
            );
          }
          await sleep(pollMs);
        }
      } catch (err) {
        const gone = await cleanUp(nodeId, serverId);
        const { message, code } = err instanceof HetznerProviderError || err instanceof HcloudError
          ? err
          : { message: `hetzner: ${(err as Error).message}`, code: "create_failed" };
        throw new HetznerProviderError(
          gone ? message : `${message}; the server could not be deleted yet`,
          code,
          !gone,
          err,
        );
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
