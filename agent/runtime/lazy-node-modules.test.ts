import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { nodeFs, nodePath } from "./lazy-node-modules.ts";

describe("Node's modules off the agent's start path", () => {
  test("the agent's bundle imports none of Node's modules statically (each would load at start)", async () => {
    const out = await Bun.build({
      entrypoints: [join(import.meta.dir, "..", "main.ts")],
      target: "bun",
      format: "esm",
    });
    expect(out.success).toBe(true);
    const code = await out.outputs[0]!.text();
    const staticImports = [...code.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]);
    expect(staticImports.filter((m) => m !== "bun:sqlite")).toEqual([]);
  });

  test("the lazy accessors give Node's modules, loaded once", () => {
    expect(nodeFs().existsSync(import.meta.path)).toBe(true);
    expect(nodeFs()).toBe(nodeFs());
    expect(nodePath().join("/a", "b")).toBe("/a/b");
  });
});
