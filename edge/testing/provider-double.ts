/**
 * The provider's double: its "servers" are in-process agent doubles (agent-double.ts) on this machine.
 * `autoReady` makes each agent call ready as soon as it exists (a fast boot); without it the test decides when
 * (or whether) the agent calls back. The provider's milestones lie where `milestones` puts them.
 */
import type { CreateServerInput, CreateServerResult, Provider, ProviderServer } from "../providers/provider.ts";
import { type AgentDouble, type AgentDoubleOptions, startAgentDouble } from "./agent-double.ts";

/** Where a create's milestones lie: the create call `createdAgoMs` before now, the server running after it. */
export type Milestones = { createdAgoMs: number; runningAfterMs: number };

/**
 * Milestones placed as a Hetzner create reports them (the server running 30 s after the create call), far
 * enough in the past that a seeded agent's boot phases have happened by now, so a waterfall has real spans.
 */
export const HETZNER_MILESTONES: Milestones = { createdAgoMs: 210_000, runningAfterMs: 30_000 };

export type ProviderDoubleOptions = {
  autoReady?: boolean;
  /** Options every server's agent double starts with. */
  double?: Partial<AgentDoubleOptions>;
  failCreate?: boolean;
  /** Leave the servers running when the edge closes the provider (an edge that "crashed"). */
  keepOnClose?: boolean;
  /** Default: the create call when `create` is called, the server running when the agent is up. */
  milestones?: Milestones;
};

export class ProviderDouble implements Provider {
  readonly name = "local" as const;
  readonly agents = new Map<string, AgentDouble>();
  readonly deleted: string[] = [];
  /** What each node's server was created with (its tokens), by node id. */
  readonly inputs = new Map<string, CreateServerInput>();
  /** Options for the next server's agent only, over `double` (e.g. one node whose boot went wrong). */
  nextDouble: Partial<AgentDoubleOptions> | null = null;
  private readonly servers = new Map<string, ProviderServer>();
  private seq = 0;

  constructor(private readonly o: ProviderDoubleOptions = {}) {}

  async create(input: CreateServerInput): Promise<CreateServerResult> {
    if (this.o.failCreate) throw new Error("injected provider failure");
    const createdAt = Date.now() - (this.o.milestones?.createdAgoMs ?? 0);
    this.inputs.set(input.nodeId, input);
    const agent = await startAgentDouble({
      nodeId: input.nodeId,
      controlPlaneUrl: input.controlPlaneUrl,
      nodeToken: input.nodeToken,
      agentToken: input.agentToken,
      createdAt,
      ...this.o.double,
      ...this.nextDouble,
    });
    this.nextDouble = null;
    const server: ProviderServer = {
      id: `double-${++this.seq}`,
      nodeId: input.nodeId,
      status: "running",
      ipv4: "127.0.0.1",
      createdAt,
      labels: input.labels,
    };
    this.agents.set(input.nodeId, agent);
    this.servers.set(server.id, server);
    // A ready call that meets an edge already stopping (the end of a test) is of no interest.
    if (this.o.autoReady) void agent.ready().catch(() => {});
    const running = this.o.milestones ? createdAt + this.o.milestones.runningAfterMs : Date.now();
    return { server, timings: [{ name: "create_call", at: createdAt }, { name: "server_running", at: running }] };
  }

  async get(serverId: string): Promise<ProviderServer | null> {
    return this.servers.get(serverId) ?? null;
  }

  async delete(serverId: string): Promise<void> {
    const server = this.servers.get(serverId);
    if (!server) return;
    this.servers.delete(serverId);
    this.deleted.push(server.nodeId);
    await this.agents.get(server.nodeId)?.stop();
  }

  async list(): Promise<ProviderServer[]> {
    return [...this.servers.values()];
  }

  async close(): Promise<void> {
    if (this.o.keepOnClose) return;
    await Promise.all([...this.servers.keys()].map((id) => this.delete(id)));
  }
}
