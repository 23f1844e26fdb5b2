/** The admin pages' stylesheet (served as `/admin/assets/admin.css`): plain CSS, laptop and phone. */
export const ADMIN_CSS = `
:root { --fg:#1d2430; --muted:#5d6878; --bg:#f6f7f9; --card:#fff; --line:#d9dee6; --accent:#2457c5;
  --ok:#1f8a4c; --warn:#b7791f; --bad:#c53030; --phase:#3b82f6; --prov:#8b5cf6; --mach:#64748b; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
a { color:var(--accent); }
code { font-family: ui-monospace,SFMono-Regular,Menlo,monospace; font-size:.92em; }
header.top { display:flex; flex-wrap:wrap; align-items:center; gap:.5rem 1.5rem; padding:.6rem 1rem; background:#111827; color:#fff; }
header.top a { color:#fff; text-decoration:none; }
.brand { font-weight:700; }
nav { display:flex; gap:1rem; align-items:center; flex-wrap:wrap; }
nav form { margin:0; }
button.link { background:none; border:0; color:#cbd5e1; cursor:pointer; font:inherit; padding:0; }
main { max-width:1100px; margin:0 auto; padding:1rem; }
h1 { font-size:1.4rem; margin:.4rem 0 1rem; display:flex; flex-wrap:wrap; gap:.5rem; align-items:center; }
h2 { font-size:1.1rem; margin:1.6rem 0 .6rem; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:.2rem 1rem 1rem; margin:1rem 0; }
.muted { color:var(--muted); }
.notice { padding:.6rem .8rem; border-radius:6px; background:#eef2ff; border:1px solid #c7d2fe; }
.notice.error { background:#fff1f1; border-color:#f5b5b5; color:#7f1d1d; }
.badge { display:inline-block; padding:.05rem .5rem; border-radius:999px; font-size:.8rem; font-weight:600; background:#e5e7eb; color:#374151; white-space:nowrap; }
.b-ready,.b-healthy,.b-succeeded,.b-info { background:#dcfce7; color:#14532d; }
.b-provisioning,.b-booting,.b-queued,.b-waiting_for_agent,.b-dispatched,.b-running,.b-debug { background:#dbeafe; color:#1e3a8a; }
.b-stale,.b-draining,.b-warn,.b-cancelled { background:#fef3c7; color:#78350f; }
.b-unhealthy,.b-failed,.b-error { background:#fee2e2; color:#7f1d1d; }
.scroll { overflow-x:auto; }
table.list { border-collapse:collapse; width:100%; background:var(--card); }
table.list th, table.list td { text-align:left; padding:.45rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
table.list th { font-size:.8rem; text-transform:uppercase; letter-spacing:.03em; color:var(--muted); }
.nowrap { white-space:nowrap; }
td.wide { min-width:160px; }
.prompt { max-width:40ch; overflow-wrap:anywhere; }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:.3rem 1rem; margin:0 0 1rem; }
dl.facts dt { color:var(--muted); }
dl.facts dd { margin:0; overflow-wrap:anywhere; }
.actions { display:flex; flex-wrap:wrap; gap:.6rem; }
.button, button[type=submit]:not(.link) { display:inline-block; padding:.45rem .9rem; border-radius:6px; background:var(--accent); color:#fff; border:0; text-decoration:none; font:inherit; font-weight:600; cursor:pointer; }
.tabs { display:flex; gap:.4rem; }
.tabs a { padding:.2rem .7rem; border:1px solid var(--line); border-radius:6px; text-decoration:none; }
.tabs a.current { background:var(--accent); color:#fff; border-color:var(--accent); }
.filters { display:flex; flex-wrap:wrap; gap:.6rem; align-items:end; margin-bottom:.6rem; }
.filters input, .filters select, .login input { font:inherit; padding:.35rem .5rem; border:1px solid var(--line); border-radius:6px; }
.login { max-width:420px; margin:3rem auto; }
.login form { display:grid; gap:.5rem; }
/* Boot waterfall: a label column and a track; every bar is positioned in % of the same axis. */
.waterfall { display:grid; gap:3px; }
.wf-row { display:grid; grid-template-columns:minmax(11rem,30%) 1fr; align-items:center; gap:.6rem; min-height:24px; }
.wf-label { font-size:.85rem; overflow-wrap:anywhere; }
.wf-dur { color:var(--muted); white-space:nowrap; }
.wf-track { position:relative; height:20px; background:#f1f5f9; border-radius:3px; }
.wf-axis .wf-track { background:none; height:18px; }
.wf-tick { position:absolute; top:0; transform:translateX(-50%); font-size:.72rem; color:var(--muted); white-space:nowrap; }
.wf-tick:first-child { transform:none; }
.wf-tick.end { transform:translateX(-100%); }
.wf-grid { position:absolute; top:0; bottom:0; border-left:1px dashed #cbd5e1; }
.wf-bar { position:absolute; top:3px; bottom:3px; min-width:2px; border-radius:2px; background:var(--phase); }
.wf-provider .wf-bar { background:var(--prov); }
.wf-machine .wf-bar { background:var(--mach); }
.wf-failed .wf-bar { background:var(--bad); }
.wf-unterminated .wf-bar { background:repeating-linear-gradient(45deg,var(--warn) 0 6px,#fde68a 6px 12px); border-radius:2px 0 0 2px; }
.wf-mark { font-weight:700; white-space:nowrap; }
.wf-mark-failed { color:var(--bad); }
.wf-mark-unterminated { color:var(--warn); }
/* Charts */
.charts { display:grid; grid-template-columns:repeat(auto-fit,minmax(min(100%,380px),1fr)); gap:1rem 1.5rem; }
figure.chart { margin:0; }
.plot { display:grid; grid-template-columns:2.6rem 1fr; grid-template-rows:auto auto; font-size:.72rem; color:var(--muted); position:relative; }
.plot svg { grid-column:2; grid-row:1; width:100%; height:auto; display:block; background:#fbfcfe; border-left:1px solid var(--line); border-bottom:1px solid var(--line); }
.plot .y { position:absolute; left:0; width:2.3rem; text-align:right; }
.plot .y100 { top:0; } .plot .y50 { top:calc(50% - 1.1rem); } .plot .y0 { bottom:1.4rem; }
.plot .x { grid-column:2; display:flex; justify-content:space-between; gap:.5rem; padding-top:.2rem; }
.chart .grid { stroke:#e2e8f0; stroke-width:1; }
.chart .line { fill:none; stroke:var(--accent); stroke-width:1.6; }
.chart .pt { fill:var(--accent); }
/* Task phases */
.phasebar { display:flex; width:100%; height:14px; border-radius:3px; overflow:hidden; background:#eef2f7; }
.ph { display:block; height:100%; min-width:2px; }
.ph-queued { background:#94a3b8; } .ph-provisioning { background:#8b5cf6; } .ph-boot { background:#f59e0b; }
.ph-dispatch { background:#06b6d4; } .ph-run { background:#22c55e; }
.legend { display:flex; flex-wrap:wrap; gap:.4rem 1.2rem; list-style:none; padding:0; font-size:.9rem; }
.swatch { display:inline-block; width:.8rem; height:.8rem; border-radius:2px; margin-right:.3rem; vertical-align:-1px; }
ol.log { list-style:none; margin:0; padding:.6rem; background:#0f172a; color:#e2e8f0; border-radius:6px; font:12.5px/1.5 ui-monospace,Menlo,monospace; max-height:60vh; overflow:auto; white-space:pre-wrap; overflow-wrap:anywhere; }
ol.log time { color:#64748b; }
.log-stderr { color:#fca5a5; } .log-system { color:#93c5fd; } .log-status { color:#fde68a; }
pre.box { background:#f8fafc; border:1px solid var(--line); padding:.6rem; border-radius:6px; overflow:auto; white-space:pre-wrap; }
pre.box.error { background:#fff1f1; }
@media (max-width:640px) {
  main { padding:.5rem; }
  section { padding:.1rem .6rem .8rem; }
  .wf-row { grid-template-columns:1fr; gap:2px; }
  .wf-axis .wf-label { display:none; }
  dl.facts { grid-template-columns:1fr; }
  dl.facts dt { font-weight:600; margin-top:.3rem; }
  /* The event log as cards: time and level on a line, the message under it, nothing scrolls sideways. */
  table.events, table.events tbody { display:block; }
  table.events thead { display:none; }
  table.events tr { display:grid; grid-template-columns:auto auto 1fr; gap:.2rem .5rem; padding:.5rem 0; border-bottom:1px solid var(--line); align-items:center; }
  table.events td { border:0; padding:0; }
  table.events td:nth-child(4) { grid-column:1 / -1; }
  table.events td:first-child { font-size:.8rem; color:var(--muted); }
  .plot .x span:last-child { text-align:right; }
}
`;
