/**
 * What the edge needs from a place that runs nodes (docs/architecture.md). `local` runs agent processes on
 * this machine; `hetzner` creates VMs with cloud-init. The runner sees only this interface.
 */

export type ServerStatus = "creating" | "starting" | "running" | "stopping" | "off" | "deleting" | "unknown";

export type ProviderServer = {
  /** The provider's own id (a Hetzner server id, a local PID-based id). */
  id: string;
  nodeId: string;
  status: ServerStatus;
  /** Public IPv4 when the provider assigns one. */
  ipv4: string | null;
  createdAt: number;
  labels: Record<string, string>;
};

/** One provider-side milestone, e.g. `create_call`, `action_done`, `server_running`; `at` in epoch ms. */
export type ProviderTiming = { name: string; at: number };

export type CreateServerInput = {
  nodeId: string;
  /** The node's secrets (docs/protocol.md); the provider hands them to the VM in a 0600 file and never logs them. */
  nodeToken: string;
  agentToken: string;
  /** Where the agent calls back (the edge's public URL). */
  controlPlaneUrl: string;
  labels: Record<string, string>;
  /**
   * Called with the provider's id as soon as the server exists, before anything else can fail, so the
   * caller records it; when this throws, the provider deletes the server and the create fails.
   */
  onServerCreated?: (serverId: string) => Promise<void>;
};

/**
 * A failed create. `serverMayRemain` is true when a server it made (or may have made) could not be
 * confirmed gone; the caller then must not create another for the same work until that server is
 * deleted (the orphan reaper does it on the tick).
 */
export class ProviderCreateError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly serverMayRemain: boolean,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = "ProviderCreateError";
  }
}

export type CreateServerResult = { server: ProviderServer; timings: ProviderTiming[] };

export interface Provider {
  readonly name: "local" | "hetzner";
  /** Create a server; when this fails part-way the provider cleans up what it made before throwing. */
  create(input: CreateServerInput): Promise<CreateServerResult>;
  get(serverId: string): Promise<ProviderServer | null>;
  /** Idempotent: deleting a server that is already gone succeeds. */
  delete(serverId: string): Promise<void>;
  /** SAM's servers only (found by label, and checked for it), for the orphan reaper. */
  list(): Promise<ProviderServer[]>;
  /** Release resources on edge shutdown (the local provider stops its agent processes). */
  close(): Promise<void>;
}
