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
};

export type CreateServerResult = { server: ProviderServer; timings: ProviderTiming[] };

export interface Provider {
  readonly name: "local" | "hetzner";
  /** Create a server; when this fails part-way the provider cleans up what it made before throwing. */
  create(input: CreateServerInput): Promise<CreateServerResult>;
  get(serverId: string): Promise<ProviderServer | null>;
  /** Idempotent: deleting a server that is already gone succeeds. */
  delete(serverId: string): Promise<void>;
  /** SAM's servers only (found by label), e.g. to reap orphans. */
  list(): Promise<ProviderServer[]>;
  /** Release resources on edge shutdown (the local provider stops its agent processes). */
  close(): Promise<void>;
}
