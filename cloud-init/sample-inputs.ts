/**
 * Sample renderer inputs: what `npm run render:cloud-init` prints by default, and the input sets the tests
 * check with the real tools — including the largest input the schema admits.
 */
import { type CloudInitInput, MAX_SSH_KEYS } from "./inputs.ts";

export const SAMPLE_INPUT: CloudInitInput = {
  nodeId: "node-sample-1",
  controlPlaneUrl: "https://sam.example.com",
  nodeToken: `samnode_${"N".repeat(40)}`,
  agentToken: `samagent_${"A".repeat(40)}`,
  agentDownloadUrl: "https://downloads.example.com/sam/sam-agent-linux-x64",
  agentSha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
  baseImage: "mcr.microsoft.com/devcontainers/base:ubuntu",
  arch: "amd64",
};

export const ARM_INPUT: CloudInitInput = {
  ...SAMPLE_INPUT,
  nodeId: "node_arm_2",
  agentDownloadUrl: "https://downloads.example.com/sam/sam-agent-linux-arm64",
  arch: "arm64",
  agentPort: 9443,
  sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBcd1WzN0vGJ8b3qM0D3x3p5iYl3m6b0QK1l0tVq2bS2 ops@example.com"],
};

/** Every field at its longest: the size the 32 KiB limit must accommodate. */
export const LARGEST_INPUT: CloudInitInput = {
  nodeId: "n".repeat(64),
  controlPlaneUrl: `https://${"c".repeat(60)}.example.com/${"p".repeat(512 - 81)}`,
  nodeToken: `samnode_${"N".repeat(128)}`,
  agentToken: `samagent_${"A".repeat(128)}`,
  agentDownloadUrl: `https://${"d".repeat(60)}.example.com/${"f".repeat(1024 - 81)}`,
  agentSha256: "f".repeat(64),
  baseImage: `registry.example.com:5000/${"a".repeat(199)}:${"t".repeat(29)}`,
  arch: "amd64",
  agentPort: 65535,
  heartbeatSeconds: 3600,
  sshKeys: Array.from(
    { length: MAX_SSH_KEYS },
    (_, i) => `ssh-rsa ${"A".repeat(1024 - 8 - 101)} ${String(i).padStart(100, "k")}`,
  ),
};
