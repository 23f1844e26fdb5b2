/**
 * Debian's chromium driven by playwright-core, headless, with a fresh profile per run and nothing that
 * talks to the network beyond loopback. `close()` ends the browser and removes the profile.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

export async function launchBrowser(): Promise<{ context: BrowserContext; dir: string; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "sam-admin-browser-"));
  const context = await chromium.launchPersistentContext(join(dir, "profile"), {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
    timeout: 20_000,
  });
  return {
    context,
    dir,
    async close() {
      await context.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
