/** The edge's error rendering (shared/http-errors.ts); unexpected errors go to the edge's log. */
import { createErrorRenderer } from "../shared/http-errors.ts";

export { renderNotFound } from "../shared/http-errors.ts";

export const renderError = createErrorRenderer({
  internalHint: "see the edge log",
  onUnexpected(err, c) {
    console.error(`sam edge: unhandled error on ${c.req.method} ${c.req.path}:`, err);
  },
});
