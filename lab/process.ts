/** Running host tools from the lab: a failure throws with the tool's own last words. */
import { spawn } from "node:child_process";

export function run(cmd: string, args: string[], options: { binary?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d) => {
      err += d;
      if (err.length > 20_000) err = err.slice(-10_000);
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const all = Buffer.concat(out);
      if (code === 0) resolve(options.binary ? (all as unknown as string) : all.toString());
      else reject(new Error(`${cmd} exited ${code}: ${err.trim().split("\n").slice(-8).join("\n")}`));
    });
  });
}
