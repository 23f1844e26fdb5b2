/**
 * A deadline for reading a request's body, without wrapping the body: a middleware registers when the body
 * must have arrived, and the body readers (`readJsonBody`, the inference proxy's) race their read against
 * it. Wrapping the body in a guarding stream cost ≈ 200–300 µs per request under Deno; a race costs a
 * promise. A read that loses the race is left to settle on its own when the client sends the rest or goes.
 */
const deadlines = new WeakMap<Request, Promise<never>>();

export function setBodyDeadline(req: Request, expired: Promise<never>): void {
  deadlines.set(req, expired);
}

/** `read`, or the request's body deadline if that comes first. */
export function withinBodyDeadline<T>(req: Request, read: Promise<T>): Promise<T> {
  const expired = deadlines.get(req);
  if (!expired) return read;
  read.catch(() => {}); // the loser's rejection, if any, is nobody's business
  return Promise.race([read, expired]);
}
