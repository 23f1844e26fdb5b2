/**
 * The real edge (edge/main.ts under Deno) as the lab's control plane, with the Hetzner provider pointed at
 * the Hetzner API fake whose creates boot lab VMs. Agents reach it as `http://edge.sam-lab.test` (a guestfwd);
 * it reaches agents through the lab's CONNECT proxy.
 */
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HOSTS } from "./stand-ins.ts";
import { freePort } from "../shared/testing/free-port.ts";
import { type ApiCall, type ApiCallOptions, edgeApiCall } from "../edge/testing/api-call.ts";

export const LAB_ADMIN_TOKEN = "samlab-admin-token-0123456789abcdef";

export type LabEdge = {
  url: string;
  port: number;
  log: string[];
  call: ApiCall;
  /** A call whose answer must be a 2xx, parsed. */
  json<T = any>(method: string, path: string, o?: ApiCallOptions): Promise<T>;
  stop(): Promise<void>;
};

export async function startLabEdge(
  o: { root: string; hetznerUrl: string; proxyPort: number; agentSha256: string; env?: Record<string, string> },
): Promise<LabEdge> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "sam-lab-edge-"));
  const child = spawn(join(o.root, "node_modules/.bin/deno"), ["run", "--allow-all", "edge/main.ts"], {
    cwd: o.root,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      SAM_PORT: String(port),
      SAM_HOST: "127.0.0.1",
      SAM_DATA_DIR: dataDir,
      SAM_ADMIN_TOKEN: LAB_ADMIN_TOKEN,
      SAM_PUBLIC_URL: `http://${HOSTS.edge}`,
      HCLOUD_TOKEN: "lab-hcloud-token",
      SAM_HCLOUD_API_BASE: o.hetznerUrl,
      SAM_AGENT_DOWNLOAD_URL: `https://${HOSTS.downloads}/sam-agent`,
      SAM_AGENT_SHA256: o.agentSha256,
      SAM_NODEJS_MIRROR: `https://${HOSTS.nodejs}/dist`,
      SAM_NPM_REGISTRY: `https://${HOSTS.npm}`,
      SAM_HEARTBEAT_INTERVAL: "10s",
      SAM_TICK_INTERVAL: "5s",
      // The edge reaches agents at the addresses they report, through the lab's proxy; loopback stays direct.
      HTTPS_PROXY: `http://127.0.0.1:${o.proxyPort}`,
      NO_PROXY: "127.0.0.1,localhost",
      ...o.env,
    },
  });
  const log: string[] = [];
  const keep = (d: Buffer) => {
    for (const l of d.toString().split("\n")) if (l) log.push(l);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`lab: the edge did not start:\n${log.join("\n")}`);
    }
    await Bun.sleep(200);
  }
  const call = edgeApiCall(url, LAB_ADMIN_TOKEN);
  return {
    url,
    port,
    log,
    call,
    async json(method, path, o) {
      const res = await call(method, path, o);
      const text = await res.text();
      if (!res.ok) throw new Error(`lab: ${method} ${path} → ${res.status} ${text.slice(0, 300)}`);
      return JSON.parse(text);
    },
    async stop() {
      child.kill("SIGINT");
      await new Promise((r) => child.exitCode !== null ? r(null) : child.on("exit", r));
    },
  };
}
