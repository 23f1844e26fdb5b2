import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runInGroup } from "../process-group.ts";
import { createToolBox, LIST_CAP, OUTPUT_CAP, READ_CAP, type ToolBox } from "./tools.ts";

let base: string;
let root: string;
let outside: string;
let tools: ToolBox;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), "sam-tools-"));
  root = join(base, "ws");
  outside = join(base, "outside");
  mkdirSync(root);
  mkdirSync(outside);
  writeFileSync(join(outside, "secret.txt"), "top secret");
  writeFileSync(join(root, "hello.txt"), "hello\n");
  symlinkSync(join(outside, "secret.txt"), join(root, "link-out.txt"));
  symlinkSync(outside, join(root, "dir-out"));
  symlinkSync(join(outside, "nope.txt"), join(root, "dangling.txt"));
  symlinkSync(join(root, "hello.txt"), join(root, "link-in.txt"));
  tools = await createToolBox(
    root,
    (command, o) =>
      runInGroup(["sh", "-c", command], {
        cwd: root,
        env: { PATH: process.env.PATH ?? "" },
        onLine: o.onLine,
        timeoutMs: o.timeoutMs,
        signal: o.signal,
        killGraceMs: 200,
      }),
    500,
  );
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

const call = (name: string, args: unknown) => tools.call(name, JSON.stringify(args));

describe("built-in agent tools", () => {
  test("read, write and list inside the workspace", async () => {
    expect(await call("read_file", { path: "hello.txt" })).toBe("hello\n");
    expect(await call("write_file", { path: "src/new/file.ts", content: "export {};\n" })).toBe(
      "wrote 11 bytes to src/new/file.ts",
    );
    expect(readFileSync(join(root, "src/new/file.ts"), "utf8")).toBe("export {};\n");
    const listing = (await call("list_files", {})).split("\n");
    expect(listing).toContain("hello.txt");
    expect(listing).toContain("src/new/file.ts");
    expect(await call("read_file", { path: "link-in.txt" })).toBe("hello\n");
    expect(tools.written).toContain("src/new/file.ts");
  });

  test.each([
    ["read_file", { path: "../outside/secret.txt" }, "outside the workspace"],
    ["read_file", { path: "$OUTSIDE/secret.txt" }, "outside the workspace"],
    ["read_file", { path: "link-out.txt" }, "through a symlink"],
    ["read_file", { path: "dir-out/secret.txt" }, "through a symlink"],
    ["write_file", { path: "../escape.txt", content: "x" }, "outside the workspace"],
    ["write_file", { path: "dir-out/planted.txt", content: "x" }, "through a symlink"],
    ["write_file", { path: "link-out.txt", content: "x" }, "through a symlink"],
    ["write_file", { path: "dangling.txt", content: "x" }, "symlink to nowhere"],
    ["list_files", { path: "dir-out" }, "through a symlink"],
  ])("%s %j is refused (%s)", async (name, args, why) => {
    const out = await call(name, { ...args, path: args.path.replace("$OUTSIDE", outside) });
    expect(out).toStartWith("error:");
    expect(out).toContain(why);
    expect(readFileSync(join(outside, "secret.txt"), "utf8")).toBe("top secret");
    expect(existsSync(join(outside, "planted.txt"))).toBe(false);
    expect(existsSync(join(outside, "nope.txt"))).toBe(false);
    expect(existsSync(join(base, "escape.txt"))).toBe(false);
  });

  test("bad calls get an error the model can act on, not an exception", async () => {
    expect(await tools.call("rm_rf", "{}")).toStartWith("error: unknown tool 'rm_rf'");
    expect(await tools.call("read_file", "{not json")).toBe("error: arguments are not valid JSON");
    expect(await call("read_file", {})).toStartWith("error: path: ");
    expect(await call("write_file", { path: "a.txt", content: 5 })).toBe("error: content: content must be a string");
    expect(await call("read_file", { path: "missing.txt" })).toBe("error: missing.txt: no such file");
    expect(await call("read_file", { path: "src" })).toBe("error: src: not a regular file");
  });

  test("reads and listings are capped", async () => {
    writeFileSync(join(root, "big.txt"), "y".repeat(READ_CAP + 100));
    const big = await call("read_file", { path: "big.txt" });
    expect(big).toContain(`[truncated: showing ${READ_CAP} of ${READ_CAP + 100} bytes]`);
    mkdirSync(join(root, "many"));
    for (let i = 0; i < LIST_CAP + 5; i++) writeFileSync(join(root, "many", `f${String(i).padStart(4, "0")}`), "");
    const listing = await call("list_files", { path: "many" });
    expect(listing).toEndWith(`[truncated at ${LIST_CAP} entries]`);
    rmSync(join(root, "many"), { recursive: true });
  });

  test("run_command reports the exit code, caps output, and stops at its timeout", async () => {
    expect(await call("run_command", { command: "echo hi; exit 4" })).toBe("exit code 4\nhi\n");
    const flood = await call("run_command", { command: `yes line | head -n 5000` });
    expect(flood.length).toBeLessThan(OUTPUT_CAP + 200);
    expect(flood).toContain("[output truncated:");
    const slow = await call("run_command", { command: "sleep 30" });
    expect(slow).toStartWith("timed out after 500 ms");
  }, 10_000);
});
