/**
 * The edge's calls to a node's agent (docs/protocol.md § Edge → agent), with the agent token and a timeout
 * on the response headers only, so a streamed body (an export) is never cut short or buffered.
 */
import { HttpError } from "../../shared/errors.ts";
import type { NodeRecord } from "./store.ts";

export type AgentFetch = (input: string, init?: RequestInit) => Promise<Response>;

export class AgentUnreachable extends Error {
  constructor(readonly kind: "unreachable" | "timeout", message: string) {
    super(message);
    this.name = "AgentUnreachable";
  }
}

export class AgentClient {
  constructor(private readonly fetchImpl: AgentFetch = (input, init) => fetch(input, init)) {}

  async call(node: Pick<NodeRecord, "id" | "agentUrl" | "agentToken" | "status">, path: string, init: { method?: string; body?: unknown; timeoutMs: number }): Promise<Response> {
    if (!node.agentUrl) {
      throw new HttpError(409, `node ${node.id} has no agent yet (status: ${node.status})`, { code: "agent_not_ready" });
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), init.timeoutMs);
    try {
      return await this.fetchImpl(`${node.agentUrl.replace(/\/+$/, "")}${path}`, {
        method: init.method ?? "GET",
        headers: {
          Authorization: `Bearer ${node.agentToken}`,
          ...(init.body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        signal: controller.signal,
      });
    } catch (err) {
      if (controller.signal.aborted) throw new AgentUnreachable("timeout", `no answer within ${init.timeoutMs} ms`);
      throw new AgentUnreachable("unreachable", describeFetchError(err));
    } finally {
      clearTimeout(timer);
    }
  }
}

function describeFetchError(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string } };
  return e.cause?.code ?? e.code ?? (e.message ? e.message.split("\n")[0]! : "connection failed");
}
