/** The agent's error rendering (shared/http-errors.ts); unexpected errors are recorded in its event log. */
import { createErrorAnswer, createErrorRenderer, type ErrorRendererOptions } from "../../shared/http-errors.ts";
import type { EventRecorder } from "../contracts.ts";

export { renderNotFound } from "../../shared/http-errors.ts";

function options(events: EventRecorder): ErrorRendererOptions {
  return {
    internalHint: "see the agent's event log",
    messages: {
      401: "missing or invalid agent token",
      413: "request body too large",
    },
    onUnexpected(err, c) {
      events.record({ type: "error", level: "error", message: `${c.req.method} ${c.req.path}: ${err.message}` });
    },
  };
}

export const errorRenderer = (events: EventRecorder) => createErrorRenderer(options(events));

/** The same answer as a status and body, for one task of a batch (`POST /tasks/batch`). */
export const errorAnswer = (events: EventRecorder) => createErrorAnswer(options(events));
