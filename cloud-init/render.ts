/**
 * The user-data renderer: validated inputs → `#cloud-config` text, emitted by the `yaml` package from a typed
 * object (never by concatenating YAML), so no value can change the document's structure.
 */
import * as v from "valibot";
import { stringify } from "yaml";
import { describeIssue } from "../shared/validate.ts";
import { agentEnvFile, agentUnit, tokenFile } from "./agent-unit.ts";
import { renderRuncmd } from "./boot-plan.ts";
import { type CloudInitConfig, CloudInitInput } from "./inputs.ts";
import { VM } from "./vm-layout.ts";

/** Hetzner Cloud refuses user-data above 32 KiB. */
export const USER_DATA_LIMIT = 32 * 1024;

export class CloudInitInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CloudInitInputError";
  }
}

type WriteFile = { path: string; content: string; permissions: string; owner: string };

/** What the renderer emits, typed; `stringify` turns it into YAML. */
export type CloudConfig = {
  ssh_authorized_keys?: string[];
  write_files: WriteFile[];
  runcmd: string[];
};

const JOURNALD_DROP_IN = [
  "[Journal]",
  // Persistent, so a boot timeline survives an agent restart; capped so a chatty task cannot fill the disk.
  "Storage=persistent",
  "SystemMaxUse=500M",
  "",
].join("\n");

/** Docker daemon config applied by the docker-restart phase: containers survive later daemon restarts. */
const DOCKER_DAEMON = `${
  JSON.stringify(
    { "live-restore": true, "log-driver": "json-file", "log-opts": { "max-size": "20m", "max-file": "3" } },
    null,
    2,
  )
}\n`;

export function parseCloudInitInput(input: unknown): CloudInitConfig {
  const result = v.safeParse(CloudInitInput, input);
  if (!result.success) throw new CloudInitInputError(`cloud-init input: ${describeIssue(result.issues[0])}`);
  return result.output;
}

export function cloudConfig(config: CloudInitConfig): CloudConfig {
  const file = (path: string, content: string, permissions: string): WriteFile => ({
    path,
    content,
    permissions,
    owner: "root:root",
  });
  return {
    ...(config.sshKeys.length > 0 ? { ssh_authorized_keys: config.sshKeys } : {}),
    write_files: [
      file(VM.agentEnv, agentEnvFile(config), "0644"),
      file(VM.tokenFile, tokenFile(config), "0600"),
      file(VM.agentUnit, agentUnit(), "0644"),
      file(VM.journaldDropIn, JOURNALD_DROP_IN, "0644"),
      file(VM.dockerDaemonJson, DOCKER_DAEMON, "0644"),
    ],
    runcmd: renderRuncmd(config),
  };
}

/** Render user-data for one node. Throws `CloudInitInputError` naming the bad field, or when over the limit. */
export function renderCloudInit(input: unknown): string {
  const config = parseCloudInitInput(input);
  const text = `#cloud-config\n${stringify(cloudConfig(config), { lineWidth: 0 })}`;
  const size = new TextEncoder().encode(text).length;
  if (size > USER_DATA_LIMIT) {
    throw new CloudInitInputError(
      `cloud-init: rendered user-data is ${size} bytes, over Hetzner's ${USER_DATA_LIMIT}-byte limit`,
    );
  }
  return text;
}
