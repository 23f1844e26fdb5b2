/**
 * Boot-plan estimate: the critical path to "agent ready" of the rendered boot plan, computed from
 * per-step figures, side by side with the old serial order of the slow-boot incident. Not a measurement of a VM: the figures
 * are published ones (the incident report, Hetzner) or stated estimates, each printed with its source.
 *
 *   node_modules/.bin/bun scripts/bench/boot-plan.ts
 */
import { type BootPhase, bootPlan } from "../../cloud-init/boot-plan.ts";
import { parseCloudInitInput } from "../../cloud-init/render.ts";
import { SAMPLE_INPUT } from "../../cloud-init/sample-inputs.ts";

type Figure = { seconds: number; source: string };

/** Before runcmd: kernel to userspace on a stock Hetzner image, then cloud-init's init/config stages. */
const BEFORE_RUNCMD: Figure[] = [
  { seconds: 11, source: "Hetzner stock image ≈ 11 s to userspace (as reported)" },
  { seconds: 8, source: "estimate: cloud-init init + config stages incl. write_files" },
];

const FIGURES: Record<string, Figure> = {
  "docker-start": { seconds: 2, source: "estimate: docker.service already starting on docker-ce" },
  firewall: { seconds: 0.5, source: "estimate: 12 iptables calls" },
  "nodejs-install": { seconds: 6, source: "estimate: ~48 MB official .tar.gz at ~50 MB/s + gzip extract" },
  "image-pull": { seconds: 25, source: "journal: ~270 MB devcontainers/base:ubuntu; ~50 MB/s incl. extraction" },
  "sandbox-install": { seconds: 4, source: "estimate: apt-get install bubblewrap (one small package)" },
  "agent-download": { seconds: 3, source: "CRAFT.md: ~104 MiB binary (~49 MiB gzip) at ~50 MB/s" },
  "devcontainer-cli": { seconds: 8, source: "estimate: npm i -g @devcontainers/cli (0 dependencies)" },
  "journald-config": { seconds: 0.5, source: "estimate" },
  "image-pull-wait": { seconds: 0, source: "join only" },
  "devcontainer-cli-wait": { seconds: 0, source: "join only (after the agent started)" },
  "docker-restart": { seconds: 3, source: "estimate: empty daemon, live-restore" },
  tls: { seconds: 0.3, source: "estimate: one EC P-256 key" },
  "agent-verify": { seconds: 0.5, source: "estimate: sha256 of ~104 MiB" },
  "agent-start": { seconds: 1, source: "estimate: daemon-reload + start, agent opens its databases" },
};

/** The incident's old order: everything in series, Node.js from apt, and the ghost pull competing for bandwidth. */
const OLD_SERIAL: [string, Figure][] = [
  ["docker-start", FIGURES["docker-start"]!],
  ["agent-start (too early)", { seconds: 1, source: "journal: agent started 2nd" }],
  ["nodejs-install (apt)", { seconds: 75, source: "journal: 60–90 s" }],
  ["devcontainer-cli", { seconds: 45, source: "journal: 30–60 s" }],
  ["neko pre-pull (ghost)", { seconds: 300, source: "journal: 1–2 GB, 5–10 min on shared bandwidth" }],
  ["image-pull", FIGURES["image-pull"]!],
  ["docker-restart", FIGURES["docker-restart"]!],
  ["agent restart (Requires= kill chain)", { seconds: 2, source: "journal: Requires=docker.service" }],
];

type Span = { name: string; start: number; end: number };

/**
 * Simulate the plan as the shell runs it: foreground in series, background from launch, joins wait (a
 * background job's joins too). Ready is when the agent-start phase ends, not the script's end.
 */
export function criticalPath(
  plan: BootPhase[],
  figure: (name: string) => number,
  offset: number,
): { spans: Span[]; ready: number } {
  const spans: Span[] = [];
  const ends = new Map<string, number>();
  let t = offset;
  for (const phase of plan) {
    const d = figure(phase.name);
    const joined = Math.max(t, ...(phase.joins ?? []).map((j) => ends.get(j) ?? t));
    spans.push({ name: phase.name, start: t, end: joined + d });
    ends.set(phase.name, joined + d);
    if (!phase.background) t = joined + d;
  }
  return { spans, ready: ends.get("agent-start") ?? t };
}

if (import.meta.main) {
  const offset = BEFORE_RUNCMD.reduce((s, f) => s + f.seconds, 0);
  const plan = bootPlan(parseCloudInitInput(SAMPLE_INPUT));
  const ours = criticalPath(plan, (n) => FIGURES[n]?.seconds ?? 0, offset);
  let t = offset;
  const old: Span[] = OLD_SERIAL.map(([name, f]) => ({ name, start: t, end: t += f.seconds }));

  const fmt = (n: number) => n.toFixed(1).padStart(6);
  console.log(`before runcmd: ${offset} s (${BEFORE_RUNCMD.map((f) => f.source).join("; ")})\n`);
  console.log("our order (rendered plan)");
  for (const s of ours.spans) {
    console.log(`  ${s.name.padEnd(22)} ${fmt(s.start)} → ${fmt(s.end)} s   ${FIGURES[s.name]?.source ?? ""}`);
  }
  console.log("\nold serial order (journal)");
  for (const s of old) console.log(`  ${s.name.padEnd(38)} ${fmt(s.start)} → ${fmt(s.end)} s`);
  const oldReady = old.at(-1)!.end;
  const doubled = criticalPath(plan, (n) => 2 * (FIGURES[n]?.seconds ?? 0), offset);
  console.log(`\npessimistic (every runcmd figure doubled): ours ${doubled.ready.toFixed(1)} s`);
  console.log(
    `agent ready: ours ${ours.ready.toFixed(1)} s, old ${oldReady.toFixed(1)} s (ratio ${
      (oldReady / ours.ready).toFixed(1)
    }×); target ≤ 90 s: ${ours.ready <= 90 ? "met" : "NOT met"}`,
  );
}
