/**
 * A provider whose "servers" are stub agents (stub-agent.ts), with provider milestones placed the way a
 * Hetzner create would report them (create call, then running 30 s later), so the waterfall has real spans.
 */
import type { CreateServerInput, CreateServerResult, Provider, ProviderServer } from "../providers/provider.ts";
import { startStubAgent, type StubAgent } from "./stub-agent.ts";

/** How far in the past the stub's "create call" lies, so the boot phases have happened by now. */
export const BOOT_LEAD_MS = 210_000;

export class StubProvider implements Provider {
  readonly name = "local" as const;
  readonly agents = new Map<string, StubAgent>();
  private readonly servers = new Map<string, ProviderServer>();
  /** The next server created boots with a failed and an unterminated phase. */
  troubledNext = false;

  async create(input: CreateServerInput): Promise<CreateServerResult> {
    const createdAt = Date.now() - BOOT_LEAD_MS;
    const agent = await startStubAgent({
      nodeId: input.nodeId,
      controlPlaneUrl: input.controlPlaneUrl,
      nodeToken: input.nodeToken,
      agentToken: input.agentToken,
      createdAt,
      troubledBoot: this.troubledNext,
    });
    this.troubledNext = false;
    this.agents.set(input.nodeId, agent);
    const server: ProviderServer = {
      id: `stub-${input.nodeId}`,
      nodeId: input.nodeId,
      status: "running",
      ipv4: "127.0.0.1",
      createdAt,
      labels: input.labels,
    };
    this.servers.set(server.id, server);
    return {
      server,
      timings: [{ name: "create_call", at: createdAt }, { name: "server_running", at: createdAt + 30_000 }],
    };
  }

  async get(serverId: string): Promise<ProviderServer | null> {
    return this.servers.get(serverId) ?? null;
  }

  async delete(serverId: string): Promise<void> {
    const server = this.servers.get(serverId);
    if (!server) return;
    this.servers.delete(serverId);
    await this.agents.get(server.nodeId)?.stop();
  }

  async list(): Promise<ProviderServer[]> {
    return [...this.servers.values()];
  }

  async close(): Promise<void> {
    await Promise.all([...this.servers.keys()].map((id) => this.delete(id)));
  }
}
