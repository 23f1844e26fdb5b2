/**
 * The edge's calls to a node's agent (docs/protocol.md § Edge → agent), with the agent token and a timeout
 * on the response headers only, so a streamed body (an export) is never cut short or buffered.
 */
import { HttpError } from "../../shared/errors.ts";
import { SecretBox } from "../auth/secret-box.ts";
import { bunPinnedTls, isCertificateError, type PinnedTls } from "./pinned-fetch.ts";
import type { NodeRecord } from "./store.ts";

export type AgentFetch = (input: string, init?: RequestInit) => Promise<Response>;

export class AgentUnreachable extends Error {
  constructor(readonly kind: "unreachable" | "timeout", message: string) {
    super(message);
    this.name = "AgentUnreachable";
  }
}

/** Live nodes are far fewer; the bound only keeps a long-running edge's cache from growing with history. */
const MAX_OPENED = 10_000;

export class AgentClient {
  /** `box` opens the sealed agent tokens nodes are stored with; a plain token (tests) is sent as it is. */
  constructor(
    private readonly fetchImpl: AgentFetch = (input, init) => fetch(input, init),
    private readonly box: SecretBox | null = null,
    /** How this runtime's `fetch` trusts one certificate (pinned-fetch.ts); the Deno entry passes Deno's. */
    private readonly pinnedTls: PinnedTls = bunPinnedTls,
  ) {}

  /**
   * Opened tokens by their sealed form: a Web Crypto decrypt is an async op (tens of µs under Deno) and every
   * dispatch calls an agent. Memory is not "at rest"; the database and its files keep only the sealed form.
   */
  private readonly opened = new Map<string, string>();

  private async token(stored: string): Promise<string> {
    if (!SecretBox.isSealed(stored)) return stored;
    const known = this.opened.get(stored);
    if (known !== undefined) return known;
    if (!this.box) throw new Error("the agent token is sealed but no secret key was given to open it");
    const plain = await this.box.open(stored);
    if (this.opened.size >= MAX_OPENED) this.opened.clear();
    this.opened.set(stored, plain);
    return plain;
  }

  async call(
    node: Pick<NodeRecord, "id" | "agentUrl" | "agentToken" | "agentTlsCert" | "status">,
    path: string,
    /** `body` is sent as JSON; `json`, a body already serialised, as it is. */
    init: { method?: string; body?: unknown; json?: string; timeoutMs: number },
  ): Promise<Response> {
    if (!node.agentUrl) {
      throw new HttpError(409, `node ${node.id} has no agent yet (status: ${node.status})`, {
        code: "agent_not_ready",
      });
    }
    // An https agent is called trusting only the certificate it reported (pinned-fetch.ts); without one on
    // record there is nothing to trust, and the call is not made.
    const https = node.agentUrl.startsWith("https:");
    if (https && !node.agentTlsCert) {
      throw new AgentUnreachable("unreachable", `node ${node.id} serves https but reported no certificate`);
    }
    const token = await this.token(node.agentToken);
    const json = init.json ?? (init.body === undefined ? undefined : JSON.stringify(init.body));
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), init.timeoutMs);
    try {
      return await this.fetchImpl(`${node.agentUrl.replace(/\/+$/, "")}${path}`, {
        method: init.method ?? "GET",
        headers: {
          Authorization: `Bearer ${token}`,
          ...(json === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: json,
        signal: controller.signal,
        ...(https ? this.pinnedTls(node.agentTlsCert!) : {}),
      });
    } catch (err) {
      if (controller.signal.aborted) throw new AgentUnreachable("timeout", `no answer within ${init.timeoutMs} ms`);
      const why = describeFetchError(err);
      throw new AgentUnreachable(
        "unreachable",
        isCertificateError(why) ? `the agent's TLS certificate is not the one it reported (${why})` : why,
      );
    } finally {
      clearTimeout(timer);
    }
  }
}

function describeFetchError(err: unknown): string {
  // Bun names the failure in `code`; Deno says "fetch failed" and puts the reason in the cause's message.
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const firstLine = (text?: string) => (text ? text.split("\n")[0]! : undefined);
  return e.cause?.code ?? e.code ?? firstLine(e.cause?.message) ?? firstLine(e.message) ?? "connection failed";
}
