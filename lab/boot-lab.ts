/**
 * `npm run test:boot`: SAM's cloud-init in real VMs (qemu, software emulation), with the real edge as the
 * control plane and a stand-in internet on loopback. Three boots run at once:
 *  - main: every phase ok and in order, the agent unit active with no restart, its ready timeline equal to the
 *    guest journal, the pinned certificate and both exports through the edge, a devcontainer task, a reboot
 *    that keeps the first timeline, and the node's deletion;
 *  - failing: the image pull refused and no route (so no address for the tls phase): the agent still reports
 *    ready, degraded, with both failures, and never restarts;
 *  - stuck: the agent download never answers: the edge shows the boot live and its timeout names the phase.
 * Prints each waterfall and writes it as SVG; ends with `N passed, M failed`.
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { buildBootTimeline, firstBootMarkers } from "../agent/boot/markers.ts";
import { BACKGROUND_PHASES, PHASE_ORDER } from "../cloud-init/boot-plan.ts";
import { HETZNER_DEFAULTS } from "../edge/providers/hetzner/config.ts";
import { type HetznerFake, startHetznerFake } from "../edge/testing/hetzner-fake.ts";
import { until } from "../shared/testing/until.ts";
import type { NodeView, TaskView } from "../shared/wire/api.ts";
import type { BootTimeline } from "../shared/wire/boot.ts";
import { busyboxImage, devcontainerCli, labCertificates, nodeDistribution } from "./assets.ts";
import { type LabEdge, startLabEdge } from "./edge.ts";
import { ensureImage, type Image } from "./image.ts";
import { run } from "./process.ts";
import { type Faults, HOSTS, type StandInAssets, startAgentProxy, startStandIns } from "./stand-ins.ts";
import { bootVm, type Vm } from "./vm.ts";
import { waterfallSvg, waterfallText } from "./waterfall.ts";

const root = resolve(import.meta.dir, "..");
const cacheDir = process.env.SAM_LAB_CACHE ?? "/var/cache/sam-lab";
const runDir = process.env.SAM_LAB_OUT ?? mkdtempSync(join(tmpdir(), "sam-lab-"));
const t0 = Date.now();
const log = (line: string) => console.log(`[lab ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${line}`);

const results: { name: string; ok: boolean; detail: string }[] = [];
function check(name: string, ok: boolean, detail = ""): boolean {
  results.push({ name, ok, detail });
  console.log(`${ok ? "  ok  " : "  FAIL"} ${name}${detail ? ` — ${detail}` : ""}`);
  return ok;
}

type Scenario = { name: string; subnet: number; faults: Faults; noRoute?: boolean; memoryMiB?: number; cpus?: number };

/** Boots a lab VM for every server the edge creates on a Hetzner fake, and stops it when the edge deletes it. */
function watchServers(
  fake: HetznerFake,
  scenarios: Map<string, Scenario>,
  ctx: { image: Image; assets: StandInAssets; edge: () => LabEdge; routes: Map<string, number>; vms: Map<string, Vm> },
) {
  const seen = new Set<number>();
  const timer = setInterval(async () => {
    for (const [id, server] of fake.servers) {
      const nodeId = server.labels["sam-node-id"];
      if (seen.has(id) || !nodeId || !scenarios.has(nodeId)) continue;
      seen.add(id);
      const s = scenarios.get(nodeId)!;
      const standIns = startStandIns(ctx.assets, s.faults);
      log(`${s.name}: booting node ${nodeId} (server ${id})`);
      const vm = await bootVm({
        name: `${s.name}-${nodeId}`,
        dir: join(runDir, s.name),
        image: ctx.image,
        userData: server.userData,
        subnet: s.subnet,
        edgePort: ctx.edge().port,
        standInPort: standIns.port,
        caCert: ctx.assets.ca.caCert,
        noRoute: s.noRoute,
        memoryMiB: s.memoryMiB,
        cpus: s.cpus,
        hostNames: [HOSTS.edge, HOSTS.downloads, HOSTS.nodejs, HOSTS.npm, ctx.assets.registryHost],
      });
      ctx.routes.set(`${vm.guestIp}:8443`, vm.agentHostPort);
      ctx.vms.set(nodeId, vm);
      void vm.exited.then(() => standIns.stop());
    }
    for (const [nodeId, vm] of ctx.vms) {
      const present = [...fake.servers.values()].some((s) => s.labels["sam-node-id"] === nodeId);
      if (!present && scenarios.has(nodeId)) {
        scenarios.delete(nodeId);
        log(`node ${nodeId}: server deleted, stopping its VM`);
        void vm.stop();
      }
    }
  }, 500);
  return () => clearInterval(timer);
}

const node = (edge: LabEdge, id: string) => edge.json<NodeView>("GET", `/api/nodes/${id}`);
const phaseSummary = (t: BootTimeline | null) => (t?.phases ?? []).map((p) => `${p.name}:${p.status}`).join(" ");

function guestTimeline(journal: string): BootTimeline {
  const { bootId, markers } = firstBootMarkers(journal);
  return buildBootTimeline({
    source: "journald",
    markers,
    bootId,
    kernelUptimeMsAtAgentStart: null,
    agentStartedAt: 0,
  });
}

async function integrity(edge: LabEdge, nodeId: string, kind: "events" | "metrics"): Promise<string> {
  const res = await edge.call("GET", `/api/nodes/${nodeId}/${kind}/export`);
  if (res.status !== 200) return `HTTP ${res.status} ${(await res.text()).slice(0, 200)}`;
  const file = join(runDir, `${nodeId}-${kind}.db`);
  writeFileSync(file, new Uint8Array(await res.arrayBuffer()));
  return (await run("sqlite3", [file, "PRAGMA integrity_check;"])).trim();
}

function report(name: string, view: NodeView, vm?: Vm): void {
  console.log(
    `\n${name} — node ${view.id} (${view.status}${view.statusReason ? `: ${view.statusReason}` : ""})\n${
      waterfallText(view)
    }`,
  );
  // A failed phase's own words: the tail of each background job's log, as the guest's probe last saw it.
  const logs = vm?.state()?.bootLogs.trim();
  if (logs && (view.bootTimeline?.phases ?? []).some((p) => p.status !== "ok")) {
    writeFileSync(join(runDir, `boot-logs-${name}.txt`), logs + "\n");
    console.log(`boot job logs (tail):\n${logs.split("\n").map((l) => `  ${l}`).join("\n")}`);
  }
  const svg = join(runDir, `waterfall-${name}.svg`);
  writeFileSync(svg, waterfallSvg(view, `${name}: node ${view.id}`));
  console.log(`(SVG: ${svg})`);
}

async function mainBoot(edge: LabEdge, nodeId: string, vms: Map<string, Vm>): Promise<void> {
  const ready = await until(
    "the main node's ready callback",
    async () => {
      const v = await node(edge, nodeId);
      return v.status === "ready" ? v : v.status === "failed" || v.status === "deleted"
        ? (() => {
          throw new Error(`main node failed: ${v.statusReason}`);
        })()
        : undefined;
    },
    20 * 60_000,
    3_000,
  );
  const vm = vms.get(nodeId)!;
  const phases = ready.bootTimeline?.phases ?? [];
  const firstPhase = Math.min(...phases.map((p) => p.startedAt));
  log(
    `main: agent ready ${((ready.readyAt! - vm.startedAt) / 1000).toFixed(0)} s after qemu start, ${
      ((ready.readyAt! - firstPhase) / 1000).toFixed(1)
    } s after the first phase`,
  );
  // The guest's own record, once the boot script has finished (the pull overlaps the agent's start).
  console.log(`\nmain: phases (guest journal), qemu start = 0`);
  const printPhases = (t: BootTimeline) => {
    for (const p of t.phases) {
      console.log(
        `  ${p.name.padEnd(22)} ${((p.startedAt - vm.startedAt) / 1000).toFixed(1).padStart(6)} s  ${
          p.durationMs === null ? "   …" : `${(p.durationMs / 1000).toFixed(1).padStart(5)} s`
        }  ${p.status}`,
      );
    }
  };
  const state = await until(
    "the guest journal to show the boot's end",
    () => {
      const s = vm.state();
      // The script's last phase: the pull and the CLI install both overlap the agent's start.
      return s && new RegExp(`PHASE (END|FAILED): ${PHASE_ORDER.at(-1)}`).test(s.journal) ? s : undefined;
    },
    10 * 60_000,
    2_000,
  );
  const journal = guestTimeline(state.journal);
  printPhases(journal);
  console.log(
    `  first phase → agent ready ${((ready.readyAt! - firstPhase) / 1000).toFixed(1)} s; qemu start → agent ready ${
      ((ready.readyAt! - vm.startedAt) / 1000).toFixed(1)
    } s`,
  );
  check(
    "main: every phase ran, ok, in the designed order",
    journal.phases.map((p) => p.name).join(",") ===
        [...PHASE_ORDER].sort((a, b) =>
          journal.phases.findIndex((p) => p.name === a) - journal.phases.findIndex((p) => p.name === b)
        ).join(",") &&
      PHASE_ORDER.every((n) => journal.phases.find((p) => p.name === n)?.status === "ok") &&
      PHASE_ORDER.filter((n) => !BACKGROUND_PHASES.includes(n)).join(",") ===
        journal.phases.map((p) => p.name).filter((n) => !BACKGROUND_PHASES.includes(n)).join(","),
    phaseSummary(journal),
  );
  check(
    "main: the agent unit is active and never restarted",
    state.activeState === "active" && state.restarts === 0,
    `${state.activeState}/${state.subState}, NRestarts=${state.restarts}`,
  );
  check(
    "main: downloads are deleted after install",
    !state.files.some((f) => /sam-agent\.download|node\.tar\.(xz|gz)|node\.sums/.test(f)),
    `/usr/local/lib/sam: ${state.files.join(" ") || "(empty)"}`,
  );
  // What the agent reported (its own /boot, through the edge and the pinned certificate) against journald.
  const agentBoot = await edge.json<BootTimeline>("GET", `/api/nodes/${nodeId}/boot`).catch((e) =>
    ({ error: String(e) }) as unknown as BootTimeline
  );
  const same = (agentBoot.phases ?? []).every((p) => {
    const j = journal.phases.find((q) => q.name === p.name);
    return j && j.startedAt === p.startedAt &&
      (p.status === "unterminated" || (j.endedAt === p.endedAt && j.status === p.status));
  }) && (agentBoot.phases ?? []).length >= PHASE_ORDER.length - 2;
  check(
    "main: the ready timeline equals the guest journal (agent /boot through the edge's pinned TLS)",
    same,
    `${(agentBoot.phases ?? []).length} phases reported, bootId ${agentBoot.bootId}`,
  );
  // The phases that ended after the agent read its journal reach the edge as live reports: give them a minute.
  const record = await until(
    "the edge's record to complete",
    async () => {
      const t = (await node(edge, nodeId)).bootTimeline;
      return t && t.phases.length === PHASE_ORDER.length && t.phases.every((p) => p.status !== "unterminated")
        ? t
        : undefined;
    },
    60_000,
    2_000,
  ).catch(async () => (await node(edge, nodeId)).bootTimeline);
  check(
    "main: the edge's record completes the phases the agent saw running",
    (record?.phases ?? []).every((p) => p.status === "ok") && record?.phases.length === PHASE_ORDER.length,
    phaseSummary(record),
  );
  check(
    "main: the agent's URL names its address; the edge pins its certificate",
    ready.agentUrl === `https://${vm.guestIp}:8443`,
    ready.agentUrl ?? "none",
  );
  for (const kind of ["events", "metrics"] as const) {
    const ok = await integrity(edge, nodeId, kind);
    check(`main: the ${kind} export through the edge is valid SQLite (integrity_check)`, ok === "ok", ok);
  }

  // A real devcontainer task: `devcontainer up` on the node's Docker with the base image from the lab registry.
  const key = await edge.json<{ key: string }>("POST", "/api/keys", { body: { name: "lab" } });
  const task = await edge.json<TaskView>("POST", "/api/tasks", {
    token: key.key,
    body: {
      prompt: "lab task",
      agent: { type: "command", command: "echo lab-task-ran-in $(cat /etc/os-release | head -1)" },
    },
  });
  const done = await until(
    "the devcontainer task",
    async () => {
      const t = await edge.json<TaskView>("GET", `/api/tasks/${task.id}`, { token: key.key });
      return ["succeeded", "failed", "cancelled"].includes(t.status) ? t : undefined;
    },
    10 * 60_000,
    3_000,
  );
  const steps = (done.result?.steps ?? []).map((s) => `${s.name} ${(s.durationMs / 1000).toFixed(1)}s`).join(", ");
  check(
    "main: a devcontainer task runs on the node through the edge",
    done.status === "succeeded" && /lab-task-ran-in ID=busybox/.test(done.result?.summary ?? "") &&
      steps.includes("container.build"),
    `${done.status}${done.error ? ` (${done.error})` : ""}; ${steps}; ${
      (done.result?.summary ?? "").split("\n").pop()
    }`,
  );

  // A reboot: the agent of the second boot reports again; the record stays the first boot's.
  const before = (await node(edge, nodeId)).bootTimeline!;
  log("main: rebooting the VM (Ctrl-Alt-Del)");
  await vm.reboot();
  const after = await until(
    "the agent's ready after the reboot",
    async () => {
      const v = await node(edge, nodeId);
      return v.providerTimings.some((t) => t.name === "machine_reboot") ? v : undefined;
    },
    10 * 60_000,
    3_000,
  );
  // The same boot's phases: a phase the edge first completed from a live report (the script's last waits)
  // is now read from systemd's journal on the VM, whose clock differs from the script's `date` by a few milliseconds.
  const summary = (t: BootTimeline) => t.phases.map((p) => `${p.name}:${p.status}:${Math.round(p.startedAt / 1000)}`);
  const kept = JSON.stringify(summary(after.bootTimeline!)) === JSON.stringify(summary(before)) &&
    after.bootTimeline!.bootId === before.bootId;
  check(
    "main: after a reboot the first boot's timeline stays, the reboot shows as one",
    kept && after.status === "ready",
    `bootId ${after.bootTimeline?.bootId}, machine ${after.bootTimeline?.machineBootId}, ${after.bootTimeline?.phases.length} phases`,
  );
  const rebooted = await until(
    "the guest probe after the reboot",
    () => {
      const s = vm.state();
      return s && s.activeState === "active" ? s : undefined;
    },
    5 * 60_000,
    2_000,
  );
  check(
    "main: after the reboot the agent unit is active, no restart loop",
    rebooted.restarts === 0,
    `NRestarts=${rebooted.restarts}`,
  );
  report("main", after, vm);

  await edge.json("DELETE", `/api/nodes/${nodeId}`);
  const gone = await until(
    "the node's deletion",
    async () => {
      const v = await node(edge, nodeId);
      return v.status === "deleted" ? v : undefined;
    },
    3 * 60_000,
    2_000,
  );
  check(
    "main: a deleted node's server is deleted and its VM stops",
    gone.status === "deleted" &&
      (await Promise.race([vm.exited.then(() => true), Bun.sleep(60_000).then(() => false)])),
  );
  for (const kind of ["events", "metrics"] as const) {
    const ok = await integrity(edge, nodeId, kind);
    check(`main: after the delete the archived ${kind} database still downloads and is valid`, ok === "ok", ok);
  }
}

async function failingBoot(edge: LabEdge, nodeId: string, vms: Map<string, Vm>): Promise<void> {
  const failed = await until(
    "the failing node's degraded ready",
    async () => {
      const v = await node(edge, nodeId);
      return v.status === "failed" || v.status === "deleted" ? v : undefined;
    },
    20 * 60_000,
    3_000,
  );
  const status = Object.fromEntries((failed.bootTimeline?.phases ?? []).map((p) => [p.name, p.status]));
  check(
    "failing: the agent reports ready degraded, naming the missing certificate",
    /^agent degraded: no TLS certificate/.test(failed.statusReason ?? ""),
    failed.statusReason ?? "",
  );
  check(
    "failing: the refused pull and the tls phase show as failed, the agent still started",
    status["image-pull"] === "failed" && status["tls"] === "failed" && status["agent-start"] === "ok",
    phaseSummary(failed.bootTimeline),
  );
  const vm = vms.get(nodeId);
  const s = vm?.state();
  check(
    "failing: the agent unit never restarted (no crash loop)",
    !!s && s.activeState === "active" && s.restarts === 0,
    s ? `${s.activeState}, NRestarts=${s.restarts}` : "no probe state (VM already stopped)",
  );
  report("failing", failed, vm);
}

async function stuckBoot(edge: LabEdge, nodeId: string, vms: Map<string, Vm>): Promise<void> {
  let live: NodeView | null = null;
  const failed = await until(
    "the stuck node's boot timeout",
    async () => {
      const v = await node(edge, nodeId);
      if (
        v.bootTimeline?.source === "live" && (v.bootTimeline.phases.length > (live?.bootTimeline?.phases.length ?? 0))
      ) live = v;
      return v.status === "failed" || v.status === "deleted" ? v : undefined;
    },
    20 * 60_000,
    2_000,
  );
  const seen = live as NodeView | null;
  check(
    "stuck: the boot's phases reach the edge live, before any agent",
    (seen?.bootTimeline?.phases.length ?? 0) >= 3,
    phaseSummary(seen?.bootTimeline ?? null),
  );
  check(
    "stuck: the boot timeout names the phase it is stuck in, and for how long",
    /stuck in phase agent-download for \d+s/.test(failed.statusReason ?? ""),
    failed.statusReason ?? "",
  );
  report("stuck", failed, vms.get(nodeId));
}

async function main(): Promise<number> {
  mkdirSync(runDir, { recursive: true });
  log(`cache ${cacheDir}, output ${runDir}`);
  const agentBinary = join(root, "agent", "dist", "sam-agent");
  const agentSha256 = createHash("sha256").update(readFileSync(agentBinary)).digest("hex");
  const baseImage = HETZNER_DEFAULTS.baseImage; // mcr.microsoft.com/devcontainers/base:ubuntu
  const [registryHost, ...path] = baseImage.split(":")[0]!.split("/");
  const [image, node, cli, oci, ca] = await Promise.all([
    ensureImage(cacheDir, log),
    nodeDistribution(cacheDir),
    devcontainerCli(cacheDir),
    busyboxImage(cacheDir),
    labCertificates(join(runDir, "ca"), [HOSTS.downloads, HOSTS.nodejs, HOSTS.npm, registryHost!]),
  ]);
  const assets: StandInAssets = {
    ca,
    node,
    cli,
    image: oci,
    agentBinary,
    registryHost: registryHost!,
    imageRepo: path.join("/"),
  };
  log("assets ready");

  const routes = new Map<string, number>();
  const proxy = startAgentProxy(routes);
  const vms = new Map<string, Vm>();
  const fakes = [
    await startHetznerFake({ token: "lab-hcloud-token", actionPolls: 0, runningPolls: 0 }),
    await startHetznerFake({ token: "lab-hcloud-token", actionPolls: 0, runningPolls: 0 }),
  ];
  const mainEdge = await startLabEdge({ root, hetznerUrl: fakes[0]!.url, proxyPort: proxy.port, agentSha256 });
  // A short boot budget for the boot that cannot finish, on an edge of its own.
  const shortEdge = await startLabEdge({
    root,
    hetznerUrl: fakes[1]!.url,
    proxyPort: proxy.port,
    agentSha256,
    env: { SAM_AGENT_READY_TIMEOUT: process.env.SAM_LAB_STUCK_BUDGET ?? "12m" },
  });
  const scenarios = [new Map<string, Scenario>(), new Map<string, Scenario>()];
  const stops = [
    watchServers(fakes[0]!, scenarios[0]!, { image, assets, edge: () => mainEdge, routes, vms }),
    watchServers(fakes[1]!, scenarios[1]!, { image, assets, edge: () => shortEdge, routes, vms }),
  ];
  const provision = async (edge: LabEdge, map: Map<string, Scenario>, s: Scenario) => {
    const v = await edge.json<NodeView>("POST", "/api/nodes");
    map.set(v.id, s);
    return v.id;
  };
  const mainId = await provision(mainEdge, scenarios[0]!, { name: "main", subnet: 10, faults: {} });
  // SAM_LAB_ONLY=main boots only the main scenario (a quicker run while working on the lab).
  const only = process.env.SAM_LAB_ONLY;
  const failingId = only === "main" ? null : await provision(mainEdge, scenarios[0]!, {
    name: "failing",
    subnet: 11,
    faults: { refuseImagePull: true },
    noRoute: true,
    memoryMiB: 2048,
    cpus: 1,
  });
  const stuckId = only === "main" ? null : await provision(shortEdge, scenarios[1]!, {
    name: "stuck",
    subnet: 12,
    faults: { hangAgentDownload: true },
    memoryMiB: 2048,
    cpus: 1,
  });

  // Interrupted: leave no VM or edge behind.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, async () => {
      await Promise.allSettled([...[...vms.values()].map((vm) => vm.stop()), mainEdge.stop(), shortEdge.stop()]);
      process.exit(130);
    });
  }
  const guard = (name: string, p: Promise<void>) =>
    p.catch((err) => {
      check(`${name}: scenario completed`, false, (err as Error).message);
    });
  await Promise.all([
    guard("main", mainBoot(mainEdge, mainId, vms)),
    failingId ? guard("failing", failingBoot(mainEdge, failingId, vms)) : null,
    stuckId ? guard("stuck", stuckBoot(shortEdge, stuckId, vms)) : null,
  ]);

  for (const stop of stops) stop();
  await Promise.all([...vms.values()].map((vm) => vm.stop()));
  await mainEdge.stop();
  await shortEdge.stop();
  proxy.stop();
  for (const f of fakes) await f.close();
  const failed = results.filter((r) => !r.ok).length;
  if (failed > 0) {
    console.log(`\nedge log (last lines):\n${mainEdge.log.slice(-30).join("\n")}\nVM consoles and probes: ${runDir}`);
  }
  console.log(`\ntest:boot took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  console.log(`${results.length - failed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

process.exit(await main());
