/**
 * Token usage per key per day (and model). Requests add to an in-memory tally; a timer flushes the tally
 * to the database in one batch, and `close()` flushes what is left — so recording usage never puts a
 * database round-trip on a request's critical path. Counts are additive upserts, so any number of edge
 * instances can flush into the same rows.
 */
import type { Client } from "@libsql/client";
import type { Migration } from "../db/migrate.ts";
import { RESPONSES_MIGRATION } from "./responses/store.ts";

export const INFERENCE_MIGRATIONS: Migration[] = [
  {
    id: "inference-0001-usage",
    statements: [
      `CREATE TABLE IF NOT EXISTS inference_usage (
        day TEXT NOT NULL,
        key_id TEXT NOT NULL,
        model TEXT NOT NULL,
        key_name TEXT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        estimated_requests INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, key_id, model)
      )`,
      "CREATE INDEX IF NOT EXISTS inference_usage_key ON inference_usage (key_id, day)",
    ],
  },
  RESPONSES_MIGRATION,
];

export type UsageEvent = {
  keyId: string;
  keyName: string;
  model: string;
  promptTokens: number;
  completionTokens: number;
  /** True when the upstream reported no usage and SAM counted it (≈ 4 characters per token). */
  estimated: boolean;
  at?: number;
};

type Tally = {
  day: string;
  keyId: string;
  keyName: string;
  model: string;
  requests: number;
  prompt: number;
  completion: number;
  estimated: number;
};

export type UsageRow = {
  day: string;
  keyId: string;
  keyName: string;
  model: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  estimatedRequests: number;
};

/** Tokens counted from text when the upstream does not say: about four characters per token. */
export const estimateTokens = (chars: number) => Math.ceil(chars / 4);

export class UsageRecorder {
  private tally = new Map<string, Tally>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private flushing: Promise<void> = Promise.resolve();
  /** The UTC day of the last event and its bounds: formatting a date per request showed up in profiles. */
  private day = { text: "", from: 0, to: 0 };

  constructor(
    private readonly db: Client,
    flushEveryMs: number,
    private readonly log: (line: string) => void = console.error,
  ) {
    this.timer = setInterval(() => {
      void this.flush();
    }, flushEveryMs);
    // Deno and Bun both let a pending flush timer not hold the process open.
    (this.timer as { unref?: () => void }).unref?.();
  }

  private dayOf(at: number): string {
    if (at < this.day.from || at >= this.day.to) {
      const text = new Date(at).toISOString().slice(0, 10);
      const from = Date.parse(`${text}T00:00:00Z`);
      this.day = { text, from, to: from + 86_400_000 };
    }
    return this.day.text;
  }

  record(e: UsageEvent): void {
    const day = this.dayOf(e.at ?? Date.now());
    const k = `${day}\u0000${e.keyId}\u0000${e.model}`;
    let t = this.tally.get(k);
    if (!t) {
      t = {
        day,
        keyId: e.keyId,
        keyName: e.keyName,
        model: e.model,
        requests: 0,
        prompt: 0,
        completion: 0,
        estimated: 0,
      };
      this.tally.set(k, t);
    }
    t.requests += 1;
    t.prompt += e.promptTokens;
    t.completion += e.completionTokens;
    if (e.estimated) t.estimated += 1;
  }

  /** Write the tally in one batch. Serialised, so concurrent callers never write the same counts twice. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.write());
    return this.flushing;
  }

  private async write(): Promise<void> {
    if (this.tally.size === 0) return;
    const rows = [...this.tally.values()];
    this.tally = new Map();
    try {
      await this.db.batch(
        rows.map((t) => ({
          sql:
            `INSERT INTO inference_usage (day, key_id, model, key_name, requests, prompt_tokens, completion_tokens, estimated_requests)
              VALUES (?, ?, ?, ?, ?, ?, ?, ?)
              ON CONFLICT (day, key_id, model) DO UPDATE SET
                key_name = excluded.key_name,
                requests = requests + excluded.requests,
                prompt_tokens = prompt_tokens + excluded.prompt_tokens,
                completion_tokens = completion_tokens + excluded.completion_tokens,
                estimated_requests = estimated_requests + excluded.estimated_requests`,
          args: [t.day, t.keyId, t.model, t.keyName, t.requests, t.prompt, t.completion, t.estimated],
        })),
        "write",
      );
    } catch (err) {
      // Keep the counts for the next flush rather than lose them to a transient database error.
      for (const t of rows) {
        const k = `${t.day}\u0000${t.keyId}\u0000${t.model}`;
        const cur = this.tally.get(k);
        if (cur) {
          cur.requests += t.requests;
          cur.prompt += t.prompt;
          cur.completion += t.completion;
          cur.estimated += t.estimated;
        } else this.tally.set(k, t);
      }
      this.log(`sam inference: usage flush failed, will retry: ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
  }

  async query(filter: { keyId?: string; from?: string; to?: string }): Promise<UsageRow[]> {
    await this.flush();
    const where: string[] = [];
    const args: string[] = [];
    if (filter.keyId) {
      where.push("key_id = ?");
      args.push(filter.keyId);
    }
    if (filter.from) {
      where.push("day >= ?");
      args.push(filter.from);
    }
    if (filter.to) {
      where.push("day <= ?");
      args.push(filter.to);
    }
    const rs = await this.db.execute({
      sql: `SELECT day, key_id, key_name, model, requests, prompt_tokens, completion_tokens, estimated_requests
            FROM inference_usage ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
            ORDER BY day DESC, key_id, model`,
      args,
    });
    return rs.rows.map((r) => ({
      day: String(r.day),
      keyId: String(r.key_id),
      keyName: String(r.key_name),
      model: String(r.model),
      requests: Number(r.requests),
      promptTokens: Number(r.prompt_tokens),
      completionTokens: Number(r.completion_tokens),
      estimatedRequests: Number(r.estimated_requests),
    }));
  }
}
