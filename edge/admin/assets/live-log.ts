/**
 * The one script of the admin pages (served from our origin as `/admin/assets/live-log.js`): follows a running
 * task's log over SSE and appends lines the server-rendered page does not have yet. No library needed.
 */
export const LIVE_LOG_JS = `"use strict";
(() => {
  const log = document.getElementById("log");
  if (!log || !log.dataset.stream) return;
  const state = document.getElementById("log-state");
  const badge = document.querySelector("#task-status .badge");
  let last = Number(log.dataset.lastId ?? -1);
  const source = new EventSource(log.dataset.stream);
  const append = (ev) => {
    let e;
    try { e = JSON.parse(ev.data); } catch { return; }
    if (typeof e.id !== "number" || e.id <= last) return;
    last = e.id;
    const li = document.createElement("li");
    li.className = "log-" + (e.type === "status" ? "status" : (e.stream || "stdout"));
    li.dataset.id = String(e.id);
    const time = document.createElement("time");
    time.textContent = new Date(e.at).toISOString().slice(11, 19) + "Z";
    li.append(time, " " + (e.type === "status" ? "→ " + (e.status || "") + " " + e.message : e.message));
    log.append(li);
    if (e.type === "status" && e.status && badge) {
      badge.textContent = e.status.replaceAll("_", " ");
      badge.className = "badge b-" + e.status;
    }
  };
  source.addEventListener("log", append);
  source.addEventListener("status", append);
  source.addEventListener("end", (ev) => {
    append(ev);
    source.close();
    if (state) state.textContent = "task ended (reload for the result)";
  });
  source.onerror = () => { if (state && source.readyState !== 2) state.textContent = "reconnecting…"; };
  source.onopen = () => { if (state) state.textContent = "following live…"; };
})();
`;
