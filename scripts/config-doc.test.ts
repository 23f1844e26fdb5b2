// The configuration reference cannot drift: it is generated from the settings lists, and the lists are checked
// against what the config loaders actually read (every env read is traced through a Proxy).
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadAgentConfig, SETTINGS as AGENT_SETTINGS } from "../agent/config/index.ts";
import { workConfigFromEnv } from "../agent/work/config.ts";
import { loadEdgeConfig } from "../edge/config.ts";
import { EDGE_SETTINGS } from "../edge/settings.ts";
import { RETENTION_TIMERS, TIMER_BASES, TIMER_OVERRIDES } from "../shared/timeouts.ts";
import { CONFIG_DOC, renderConfigDoc } from "./config-doc.ts";

/** An env map that records every name read from it. */
function traced(values: Record<string, string>) {
  const read = new Set<string>();
  const env = new Proxy(values, {
    get(target, key) {
      if (typeof key === "string") read.add(key);
      return target[key as string];
    },
  });
  return { env, read };
}

const TIMER_ENVS = new Set<string>(
  [...Object.values(TIMER_BASES), ...Object.values(TIMER_OVERRIDES), ...Object.values(RETENTION_TIMERS)].map((t) =>
    t.env
  ),
);

test("docs/configuration.md is what scripts/config-doc.ts generates", () => {
  expect(readFileSync(CONFIG_DOC, "utf8")).toBe(renderConfigDoc());
});

test("the edge's settings list names exactly what loadEdgeConfig reads, over its profiles", () => {
  const profiles: Record<string, string>[] = [
    {},
    {
      HCLOUD_TOKEN: "t",
      SAM_PUBLIC_URL: "https://sam.example.com",
      SAM_AGENT_DOWNLOAD_URL: "https://d.example.com/a",
      SAM_AGENT_SHA256: "a".repeat(64),
      SAM_AI_GATEWAY: "on",
      CF_ACCOUNT_ID: "acc",
      CF_AI_GATEWAY_ID: "gw",
      SAM_ADMIN_TOKEN: "x".repeat(20),
    },
  ];
  const read = new Set<string>();
  for (const p of profiles) {
    const t = traced(p);
    loadEdgeConfig(t.env);
    for (const name of t.read) read.add(name);
  }
  const listed = new Set(EDGE_SETTINGS.flatMap((g) => g.settings.map((s) => s.name)));
  expect([...read].filter((n) => !listed.has(n) && !TIMER_ENVS.has(n)).sort()).toEqual([]);
  expect([...listed].filter((n) => !read.has(n)).sort()).toEqual([]);
});

test("the agent's settings list names exactly what its configuration reads", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sam-config-doc-"));
  const tokens = join(dir, "tokens");
  writeFileSync(tokens, "SAM_NODE_TOKEN=samnode_0123456789abcdef\nSAM_AGENT_TOKEN=samagent_0123456789abcdef\n", {
    mode: 0o600,
  });
  const t = traced({ SAM_NODE_ID: "n1", SAM_CONTROL_PLANE_URL: "http://127.0.0.1:1", SAM_TOKEN_FILE: tokens });
  await loadAgentConfig(t.env);
  rmSync(dir, { recursive: true, force: true });
  const t2 = traced({});
  workConfigFromEnv(t2.env, "/d");
  const read = new Set([...t.read, ...t2.read]);
  const listed = new Set(AGENT_SETTINGS.map((s) => s.name));
  expect([...read].filter((n) => !listed.has(n) && !TIMER_ENVS.has(n)).sort()).toEqual([]);
  expect(read.has("SAM_WORKSPACE_MODE") && read.has("SAM_KILL_GRACE")).toBe(true);
});
