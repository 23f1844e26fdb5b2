/**
 * Who is calling (DESIGN.md § Identities and auth). Routes ask for the kinds they accept; everything else
 * is 401 (no or unknown credential) or 403 (a valid credential on the wrong resource).
 */
export type Caller =
  | { kind: "admin" }
  | { kind: "key"; keyId: string; name: string }
  | { kind: "task"; taskId: string; keyId: string; nodeId: string | null }
  | { kind: "node"; nodeId: string };

export type CallerKind = Caller["kind"];
