import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../shared/env.ts";
import { certificateFingerprint, helpText, loadAgentConfig, parseArgs, parseTokenFile } from "./index.ts";

const dir = mkdtempSync(join(tmpdir(), "sam-agent-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const NODE_TOKEN = "samnode_0123456789abcdef";
const AGENT_TOKEN = "samagent_0123456789abcdef";
const tokenFile = join(dir, "tokens");
writeFileSync(tokenFile, `# written by cloud-init\nSAM_NODE_TOKEN=${NODE_TOKEN}\nSAM_AGENT_TOKEN="${AGENT_TOKEN}"\n`, {
  mode: 0o600,
});
const env = { SAM_NODE_ID: "node-1", SAM_CONTROL_PLANE_URL: "http://127.0.0.1:8787/", SAM_TOKEN_FILE: tokenFile };

async function configError(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("no ConfigError");
}

describe("agent configuration", () => {
  test("defaults of docs/protocol.md, tokens from the file", async () => {
    const c = await loadAgentConfig(env);
    expect(c).toMatchObject({
      nodeId: "node-1",
      controlPlaneUrl: "http://127.0.0.1:8787",
      nodeToken: NODE_TOKEN,
      agentToken: AGENT_TOKEN,
      host: "0.0.0.0",
      port: 8443,
      publicUrl: null,
      dataDir: "/var/lib/sam-agent",
      tls: null,
      heartbeatMs: 30_000,
      metricsMs: 60_000,
      retentionMs: 7 * 86_400_000,
      bootSource: "auto",
      workspaceMode: "auto",
      devcontainerCliPending: null,
      maxConcurrentTasks: 2,
    });
    expect(c.bootJournalCommand).toEqual(["journalctl", "-t", "sam-boot", "-o", "json", "--no-pager"]);
  });

  test("flags in kebab case override the environment, with a space or '='", async () => {
    const inv = parseArgs(["--agent-port", "0", "--heartbeat-interval=5s", "--boot-source", "none"], {
      ...env,
      SAM_AGENT_PORT: "9",
    });
    expect(inv.action).toBe("run");
    const c = await loadAgentConfig(inv.env);
    expect([c.port, c.heartbeatMs, c.bootSource]).toEqual([0, 5_000, "none"]);
  });

  test("--version and --help win over everything else", () => {
    expect(parseArgs(["--agent-port", "1", "--version"], {}).action).toBe("version");
    expect(parseArgs(["--help", "--bogus"], {}).action).toBe("help");
    expect(helpText("1.2.3")).toContain("--control-plane-url");
  });

  test.each([
    [["--bogus", "1"], "--bogus: unknown option; see --help"],
    [["--node-id"], "--node-id: needs a value"],
  ])("bad argv %p: %s", async (argv, message) => {
    expect(await configError(() => parseArgs(argv, {}))).toBe(message);
  });

  test.each([
    [{ SAM_NODE_ID: undefined }, /^SAM_NODE_ID: required$/],
    [{ SAM_NODE_ID: "bad id!" }, /^SAM_NODE_ID: must be 1-64/],
    [{ SAM_CONTROL_PLANE_URL: "ftp://x" }, /^SAM_CONTROL_PLANE_URL: expected an http\(s\) URL/],
    [{ SAM_CONTROL_PLANE_URL: "nope" }, /^SAM_CONTROL_PLANE_URL: not a URL/],
    [{ SAM_TOKEN_FILE: undefined }, /^SAM_TOKEN_FILE: required$/],
    [{ SAM_TOKEN_FILE: "/nonexistent/tokens" }, /^SAM_TOKEN_FILE: cannot read '\/nonexistent\/tokens' \(ENOENT\)$/],
    [{ SAM_AGENT_PORT: "70000" }, /^SAM_AGENT_PORT: expected an integer from 0 to 65535, got '70000'$/],
    [{ SAM_HEARTBEAT_INTERVAL: "soon" }, /^SAM_HEARTBEAT_INTERVAL: expected a positive duration/],
    [{ SAM_EVENT_RETENTION: "0" }, /^SAM_EVENT_RETENTION: expected a positive duration/],
    [{ SAM_BOOT_SOURCE: "dmesg" }, /^SAM_BOOT_SOURCE: expected one of auto, journald, syslog, none/],
    [{ SAM_AGENT_PUBLIC_URL: "agent.local" }, /^SAM_AGENT_PUBLIC_URL: not a URL/],
    [{ SAM_TLS_CERT: "/x.pem" }, /^SAM_TLS_KEY: required when SAM_TLS_CERT is set$/],
    [{ SAM_MAX_CONCURRENT_TASKS: "0" }, /^SAM_MAX_CONCURRENT_TASKS: expected an integer from 1 to 64/],
  ])("refuses %j with one line naming the variable", async (patch, message) => {
    const text = await configError(() => loadAgentConfig({ ...env, ...patch }));
    expect(text).toMatch(message);
    expect(text).not.toContain("\n");
  });

  test("a token file missing a token, or with a weak one, is refused without echoing the secret", async () => {
    const f = join(dir, "weak");
    writeFileSync(f, `SAM_NODE_TOKEN=${NODE_TOKEN}\n`);
    expect(await configError(() => loadAgentConfig({ ...env, SAM_TOKEN_FILE: f }))).toBe(
      `SAM_TOKEN_FILE: '${f}' has no SAM_AGENT_TOKEN= line`,
    );
    writeFileSync(f, `SAM_NODE_TOKEN=${NODE_TOKEN}\nSAM_AGENT_TOKEN=short-secret\n`);
    const msg = await configError(() => loadAgentConfig({ ...env, SAM_TOKEN_FILE: f }));
    expect(msg).toBe(`SAM_TOKEN_FILE: SAM_AGENT_TOKEN in '${f}' must be at least 16 characters`);
    expect(msg).not.toContain("short-secret");
  });

  test("token file syntax: comments, blanks, quotes", () => {
    expect(parseTokenFile("# c\n\nA=1\nB='two'\n junk\nC = \"3\"\n")).toEqual({ A: "1", B: "two", C: "3" });
  });

  test("TLS: the fingerprint matches what openssl prints", async () => {
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    const gen = Bun.spawnSync([
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "1",
      "-subj",
      "/CN=sam-node",
    ], { stderr: "ignore" });
    expect(gen.exitCode).toBe(0);
    const openssl = Bun.spawnSync(["openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256"]).stdout
      .toString();
    const c = await loadAgentConfig({ ...env, SAM_TLS_CERT: cert, SAM_TLS_KEY: key });
    expect(c.tls!.fingerprint).toBe(openssl.trim().split("=")[1]!);
    expect(certificateFingerprint("not a cert")).toBeNull();
    expect(await configError(() => loadAgentConfig({ ...env, SAM_TLS_CERT: key, SAM_TLS_KEY: key }))).toMatch(
      /^SAM_TLS_CERT: .* holds no PEM certificate$/,
    );
  });
});
