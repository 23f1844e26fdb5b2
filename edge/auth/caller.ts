/**
 * Who is calling (docs/architecture.md § Identities). Routes ask for the kinds they accept; everything else
 * is 401 (no or unknown credential) or 403 (a valid credential on the wrong resource).
 */
export type Caller =
  | { kind: "admin" }
  /** A user's API key; `rateLimitPerMinute` null means the edge default. */
  | { kind: "key"; keyId: string; name: string; rateLimitPerMinute: number | null }
  /** A task inference token: acts for the key that submitted the task, on `/v1/*` only, until the task ends. */
  | {
    kind: "task";
    taskId: string;
    keyId: string;
    name: string;
    nodeId: string | null;
    rateLimitPerMinute: number | null;
  }
  | { kind: "node"; nodeId: string };

export type CallerKind = Caller["kind"];

/** Resolves a bearer token to its caller, or null when the token is unknown, revoked or expired. */
export type Authenticate = (token: string) => Promise<Caller | null>;
