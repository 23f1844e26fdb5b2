#!/usr/bin/env node
// Regenerates edge/providers/hetzner/testdata/hetzner-cloud.trimmed.spec.json from Hetzner's published
// cloud.spec.json: only the operations SAM calls, and the parts of the API description the fake follows
// (errors, labels, pagination, rate limits). Refuses an input whose sha256 is not the recorded one, so the
// provenance note stays true; pass --any to trim a newer copy (then update the note).
//   gunzip -c ../shared/specs/hetzner-cloud.spec.json.gz > /tmp/cloud.spec.json
//   node scripts/trim-hetzner-spec.mjs /tmp/cloud.spec.json
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const SHA256 = "55d9d6d36d6fccfcba4dd80d0a345f8d9f3655c12ca09540d582c9b055b35457";
const OPERATIONS = { "/servers": ["get", "post"], "/servers/{id}": ["get", "delete"], "/actions/{id}": ["get"] };
const SECTIONS = ["Errors", "Labels", "Label Selector", "Pagination", "Rate Limiting"];

const [input, flag] = process.argv.slice(2);
if (!input) {
  console.error("usage: node scripts/trim-hetzner-spec.mjs <cloud.spec.json> [--any]");
  process.exit(2);
}
const raw = readFileSync(input);
const sha = createHash("sha256").update(raw).digest("hex");
if (sha !== SHA256 && flag !== "--any") {
  console.error(`trim-hetzner-spec: sha256 ${sha} is not the recorded ${SHA256} (pass --any for a newer copy)`);
  process.exit(1);
}
const spec = JSON.parse(raw.toString("utf8"));

/** The `## Title` sections of the API description that the fake follows, in their original order. */
function sections(description) {
  const parts = description.split(/^(?=## )/m);
  return parts.filter((p) => SECTIONS.some((s) => p.startsWith(`## ${s}\n`))).join("").trim();
}

const paths = {};
for (const [path, methods] of Object.entries(OPERATIONS)) {
  paths[path] = {};
  for (const m of methods) paths[path][m] = spec.paths[path][m];
}
const trimmed = {
  openapi: spec.openapi,
  info: {
    ...spec.info,
    description: `Trimmed for SAM's tests: the operations SAM calls and the sections below, unchanged.\n\n${
      sections(spec.info.description)
    }\n`,
  },
  servers: spec.servers,
  security: spec.security,
  paths,
  components: { securitySchemes: spec.components.securitySchemes },
};
const out = join(
  dirname(dirname(fileURLToPath(import.meta.url))),
  "edge/providers/hetzner/testdata/hetzner-cloud.trimmed.spec.json",
);
writeFileSync(out, `${JSON.stringify(trimmed, null, 2)}\n`);
console.log(`wrote ${out} (${Object.values(OPERATIONS).flat().length} operations, from sha256 ${sha})`);
