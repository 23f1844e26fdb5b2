/**
 * The built-in agent's tools, confined to the workspace: every path is resolved against the workspace root
 * and refused when it — or any symlink on the way — leads outside it. File reads and command output are
 * capped so one call cannot flood the model's context; commands have a timeout and run as their own group.
 */
import { nodeFsPromises as fsp, nodePath } from "../../runtime/lazy-node-modules.ts";
import * as v from "valibot";
import { describeIssue } from "../../../shared/validate.ts";
import type { GroupRun, LineSink } from "../process-group.ts";

export const READ_CAP = 64 * 1024;
export const WRITE_CAP = 1024 * 1024;
export const OUTPUT_CAP = 16 * 1024;
export const LIST_CAP = 500;

export class ToolError extends Error {}

/** The tool schemas as the model sees them (OpenAI `tools`). */
export const TOOL_SPECS = [
  {
    type: "function" as const,
    function: {
      name: "read_file",
      description: "Read a text file of the workspace. Paths are relative to the workspace root.",
      parameters: { type: "object", properties: { path: { type: "string" } }, required: ["path"] },
    },
  },
  {
    type: "function" as const,
    function: {
      name: "write_file",
      description:
        "Create or overwrite a file of the workspace with the given content (parent directories are created).",
      parameters: {
        type: "object",
        properties: { path: { type: "string" }, content: { type: "string" } },
        required: ["path", "content"],
      },
    },
  },
  {
    type: "function" as const,
    function: {
      name: "list_files",
      description: "List files under a directory of the workspace (recursively, without .git); default the root.",
      parameters: { type: "object", properties: { path: { type: "string" } } },
    },
  },
  {
    type: "function" as const,
    function: {
      name: "run_command",
      description: "Run a shell command in the workspace root and return its exit code and output.",
      parameters: { type: "object", properties: { command: { type: "string" } }, required: ["command"] },
    },
  },
];

const RelPath = v.pipe(
  v.string("path must be a string"),
  v.minLength(1, "path must not be empty"),
  v.maxLength(4096),
  v.check((s) => !s.includes("\0"), "path must not contain NUL"),
);
const Args = {
  read_file: v.object({ path: RelPath }),
  write_file: v.object({
    path: RelPath,
    content: v.pipe(
      v.string("content must be a string"),
      v.maxLength(WRITE_CAP, `content is over ${WRITE_CAP} characters`),
    ),
  }),
  list_files: v.object({ path: v.optional(RelPath, ".") }),
  run_command: v.object({
    command: v.pipe(
      v.string("command must be a string"),
      v.minLength(1, "command must not be empty"),
      v.maxLength(16_384),
    ),
  }),
};
export type ToolName = keyof typeof Args;

function inside(root: string, p: string): boolean {
  return p === root || p.startsWith(root + nodePath().sep);
}

/** The nearest existing ancestor (or the path itself), resolved through symlinks. */
async function realAncestor(p: string): Promise<string> {
  for (let cur = p;; cur = nodePath().dirname(cur)) {
    try {
      return await fsp().realpath(cur);
    } catch {
      if (nodePath().dirname(cur) === cur) throw new ToolError("path does not resolve");
    }
  }
}

/** Resolve a model-supplied path inside `root` (already a realpath), or throw a ToolError saying why not. */
export async function confine(root: string, userPath: string): Promise<string> {
  const abs = nodePath().isAbsolute(userPath) ? nodePath().resolve(userPath) : nodePath().resolve(root, userPath);
  if (!inside(root, abs)) throw new ToolError(`${userPath}: outside the workspace`);
  if (!inside(root, await realAncestor(abs))) {
    throw new ToolError(`${userPath}: leads outside the workspace through a symlink`);
  }
  return abs;
}

export type CommandRunner = (
  command: string,
  opts: { onLine: LineSink; timeoutMs: number; signal?: AbortSignal },
) => Promise<GroupRun>;

export type ToolBox = {
  call(name: string, rawArgs: string, signal?: AbortSignal): Promise<string>;
  /** Files the agent wrote, relative to the root, in order (the summary names them). */
  written: string[];
};

export async function createToolBox(
  workspaceDir: string,
  runCommand: CommandRunner,
  commandTimeoutMs: number,
): Promise<ToolBox> {
  const root = await fsp().realpath(workspaceDir);
  const written: string[] = [];

  const handlers: { [K in ToolName]: (a: v.InferOutput<(typeof Args)[K]>, signal?: AbortSignal) => Promise<string> } = {
    async read_file({ path }) {
      const abs = await confine(root, path);
      const st = await fsp().stat(abs).catch(() => null);
      if (!st) throw new ToolError(`${path}: no such file`);
      if (!st.isFile()) throw new ToolError(`${path}: not a regular file`);
      const buf = await fsp().readFile(abs);
      const text = buf.subarray(0, READ_CAP).toString("utf8");
      return buf.length > READ_CAP ? `${text}\n[truncated: showing ${READ_CAP} of ${buf.length} bytes]` : text;
    },
    async write_file({ path, content }) {
      const abs = await confine(root, path);
      const existing = await fsp().lstat(abs).catch(() => null);
      if (existing?.isDirectory()) throw new ToolError(`${path}: is a directory`);
      // A dangling symlink would be followed by the write to wherever it points.
      if (existing?.isSymbolicLink() && !(await fsp().realpath(abs).catch(() => null))) {
        throw new ToolError(`${path}: is a symlink to nowhere`);
      }
      await fsp().mkdir(nodePath().dirname(abs), { recursive: true });
      // Re-check after mkdir: a parent could be a symlink created between the two steps.
      await confine(root, path);
      await fsp().writeFile(abs, content);
      const rel = nodePath().relative(root, abs);
      written.push(rel);
      return `wrote ${Buffer.byteLength(content)} bytes to ${rel}`;
    },
    async list_files({ path }) {
      const start = await confine(root, path);
      const out: string[] = [];
      const walk = async (dir: string): Promise<void> => {
        const entries = await fsp().readdir(dir, { withFileTypes: true }).catch(() => null);
        if (!entries) throw new ToolError(`${path}: not a directory`);
        entries.sort((a, b) => a.name.localeCompare(b.name));
        for (const e of entries) {
          if (out.length >= LIST_CAP) return;
          if (e.name === ".git") continue;
          const p = nodePath().join(dir, e.name);
          out.push(nodePath().relative(root, p) + (e.isDirectory() ? "/" : ""));
          // Symlinked directories are listed, not followed.
          if (e.isDirectory()) await walk(p);
        }
      };
      await walk(start);
      if (out.length === 0) return "(empty)";
      return out.length >= LIST_CAP ? `${out.join("\n")}\n[truncated at ${LIST_CAP} entries]` : out.join("\n");
    },
    async run_command({ command }, signal) {
      let output = "";
      let dropped = 0;
      const run = await runCommand(command, {
        timeoutMs: commandTimeoutMs,
        signal,
        onLine: (_s, line) => {
          if (output.length + line.length + 1 <= OUTPUT_CAP) output += line + "\n";
          else dropped += line.length + 1;
        },
      });
      const status = run.timedOut
        ? `timed out after ${commandTimeoutMs} ms`
        : run.exitCode === null
        ? `killed by ${run.signalCode}`
        : `exit code ${run.exitCode}`;
      return `${status}\n${output}${dropped > 0 ? `[output truncated: ${dropped} more characters]\n` : ""}`;
    },
  };

  return {
    written,
    async call(name, rawArgs, signal) {
      if (!(name in Args)) return `error: unknown tool '${name}'; use one of ${Object.keys(Args).join(", ")}`;
      let json: unknown;
      try {
        json = rawArgs.trim() === "" ? {} : JSON.parse(rawArgs);
      } catch {
        return "error: arguments are not valid JSON";
      }
      const parsed = v.safeParse(Args[name as ToolName], json);
      if (!parsed.success) return `error: ${describeIssue(parsed.issues[0])}`;
      try {
        return await (handlers[name as ToolName] as (a: unknown, s?: AbortSignal) => Promise<string>)(
          parsed.output,
          signal,
        );
      } catch (err) {
        if (err instanceof ToolError) return `error: ${err.message}`;
        return `error: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      }
    },
  };
}
