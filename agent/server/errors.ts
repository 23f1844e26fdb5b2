/** The agent's error rendering (shared/http-errors.ts); unexpected errors are recorded in its event log. */
import { createErrorRenderer } from "../../shared/http-errors.ts";
import type { EventRecorder } from "../contracts.ts";

export { renderNotFound } from "../../shared/http-errors.ts";

export function errorRenderer(events: EventRecorder) {
  return createErrorRenderer({
    internalHint: "see the agent's event log",
    messages: {
      401: "missing or invalid agent token",
      413: "request body too large",
    },
    onUnexpected(err, c) {
      events.record({ type: "error", level: "error", message: `${c.req.method} ${c.req.path}: ${err.message}` });
    },
  });
}
