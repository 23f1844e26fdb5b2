/**
 * Test support for Codex CLI (`@openai/codex`, pinned): its binary, the config.toml that points it at SAM
 * as a custom model provider, and a scripted model that has it write a file with its shell tool.
 */
import { join } from "node:path";
import type { ChatBody, ChatStep } from "../../shared/testing/scripted-chat.ts";

export const CODEX = join(import.meta.dirname!, "../../node_modules/.bin/codex");

/** The config a user writes to point Codex at SAM (README § Codex against SAM). */
export function codexConfig(baseUrl: string, model: string): string {
  return [
    `model = "${model}"`,
    `model_provider = "sam"`,
    "",
    "[model_providers.sam]",
    `name = "SAM"`,
    `base_url = "${baseUrl}"`,
    `env_key = "SAM_API_KEY"`,
    `wire_api = "responses"`,
    "",
  ].join("\n");
}

/** The scripted model: write the file with Codex's shell tool, then say it is done. */
export function writeFileScript(file: string, text: string): (body: ChatBody) => ChatStep {
  return (body: ChatBody) =>
    body.messages.some((m) => m.role === "tool")
      ? { text: `Wrote ${file}.` }
      : { calls: [{ name: "exec_command", args: { cmd: `printf '${text}' > ${file}` } }] };
}
