/**
 * `npm run render:cloud-init`: prints the user-data a node would boot with, for sample inputs. Any input can
 * be overridden with a flag (`--node-id n7 --arch arm64 --ssh-key "ssh-ed25519 …"`) or the matching env
 * variable (`SAM_RENDER_NODE_ID`, …). `--size` prints only the size against Hetzner's 32 KiB limit.
 */
import { parseArgs } from "node:util";
import { CloudInitInputError, renderCloudInit, USER_DATA_LIMIT } from "../cloud-init/render.ts";
import { SAMPLE_INPUT } from "../cloud-init/sample-inputs.ts";

const FIELDS = {
  "node-id": "nodeId",
  "control-plane-url": "controlPlaneUrl",
  "node-token": "nodeToken",
  "agent-token": "agentToken",
  "agent-url": "agentDownloadUrl",
  "agent-sha256": "agentSha256",
  "base-image": "baseImage",
  arch: "arch",
  "agent-port": "agentPort",
} as const;

const USAGE = `usage: npm run render:cloud-init -- [--size] [--${
  Object.keys(FIELDS).join(" V] [--")
} V] [--ssh-key LINE]…
Prints the user-data a node boots with, for sample inputs; each flag (or SAM_RENDER_<FLAG>) overrides one.
  --size     print only the size against Hetzner's 32 KiB user-data limit
  --help     this text
`;

function parseOrExit() {
  try {
    return parseArgs({
      options: {
        ...Object.fromEntries(Object.keys(FIELDS).map((k) => [k, { type: "string" as const }])),
        "ssh-key": { type: "string", multiple: true },
        size: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (err) {
    // An unknown or incomplete flag: one line and the usage, not a stack trace.
    console.error(`render:cloud-init: ${(err as Error).message.split("\n")[0]}; see --help`);
    process.exit(2);
  }
}

const values = parseOrExit();
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const input: Record<string, unknown> = { ...SAMPLE_INPUT };
for (const [flag, field] of Object.entries(FIELDS)) {
  const raw = (values as Record<string, unknown>)[flag] ??
    process.env[`SAM_RENDER_${flag.toUpperCase().replace(/-/g, "_")}`];
  if (typeof raw === "string") input[field] = field === "agentPort" ? Number(raw) : raw;
}
if (values["ssh-key"]) input.sshKeys = values["ssh-key"];

try {
  const text = renderCloudInit(input);
  const size = new TextEncoder().encode(text).length;
  if (values.size) console.log(`${size} bytes of ${USER_DATA_LIMIT} (${((100 * size) / USER_DATA_LIMIT).toFixed(1)}%)`);
  else process.stdout.write(text);
} catch (err) {
  if (err instanceof CloudInitInputError) {
    console.error(`render:cloud-init: ${err.message}`);
    process.exit(2);
  }
  throw err;
}
