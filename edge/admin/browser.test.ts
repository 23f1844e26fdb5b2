/**
 * The admin pages in a real browser (chromium via playwright-core) against a real edge served on a loopback
 * port (`createEdge`, libSQL file, runner, JSON API) with nodes and a task seeded through its API and agent
 * doubles' callbacks: login, the waterfall's geometry, the charts' points, a download that opens as SQLite, an
 * unreachable node, a wrong token, the live log, and a phone-width layout. Keeps docs/admin-node.png.
 */
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { launchBrowser } from "../testing/browser.ts";
import { until } from "../../shared/testing/until.ts";
import type { AgentDouble } from "../testing/agent-double.ts";
import { BOOT_PHASES } from "../testing/admin-seed.ts";
import { HETZNER_MILESTONES, ProviderDouble } from "../testing/provider-double.ts";
import { ADMIN_TOKEN, readyNode, startTestEdge, type TestEdge } from "../testing/test-edge.ts";

let served: TestEdge;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
let base: string;
let ok: { id: string; agent: AgentDouble };
let gone: { id: string; agent: AgentDouble };
let taskId: string;

beforeAll(async () => {
  // Agents that report the admin pages' fixtures, wait to be told to call ready, and hold their tasks.
  const provider = new ProviderDouble({
    milestones: HETZNER_MILESTONES,
    double: { diagnostics: "seeded", mode: "hold" },
  });
  served = await startTestEdge({ provider });
  base = served.url;
  const key = await served.createKey("alice");
  ok = await readyNode(served, provider, key.id);
  provider.nextDouble = { diagnostics: "troubled" };
  gone = await readyNode(served, provider, null);
  await gone.agent.stop();
  const submitted = await served.call("POST", "/api/tasks", {
    token: key.key,
    body: { prompt: "Add a --json flag to the CLI", agent: { type: "command", command: "true" } },
  });
  expect(submitted.status).toBe(201);
  taskId = ((await submitted.json()) as { id: string }).id;
  await until(
    "the task running on the ready node",
    async () =>
      ((await (await served.call("GET", `/api/tasks/${taskId}`)).json()) as { status: string }).status === "running",
  );
  await ok.agent.logs(taskId, ["cloning the repository", "reading src/cli.ts"]);
  browser = await launchBrowser();
}, 30_000);
afterAll(async () => {
  await browser?.close();
  await served?.stop();
});

/** Screenshots refresh docs/ only when asked (`SAM_ADMIN_SCREENSHOTS=1`), so a test run leaves the tree clean. */
function shotPath(name: string): string {
  return process.env.SAM_ADMIN_SCREENSHOTS === "1"
    ? join(import.meta.dir, "../../docs", name)
    : join(browser.dir, name);
}

async function loggedInPage(): Promise<Page> {
  const page = await browser.context.newPage();
  await page.goto(`${base}/admin/nodes`);
  if (page.url().includes("/admin/login")) {
    await page.fill("#token", ADMIN_TOKEN);
    await Promise.all([page.waitForURL(`${base}/admin/nodes`), page.click("button[type=submit]")]);
  }
  return page;
}

describe("admin pages in a browser", () => {
  test("a wrong token cannot see any page", async () => {
    await browser.context.clearCookies();
    const page = await browser.context.newPage();
    try {
      for (const path of ["/admin/nodes", `/admin/nodes/${ok.id}`, `/admin/tasks/${taskId}`]) {
        await page.goto(`${base}${path}`);
        expect(new URL(page.url()).pathname).toBe("/admin/login");
        await page.fill("#token", "samadm_not_the_right_token_at_all");
        await page.click("button[type=submit]");
        await page.waitForSelector("#login-error");
        expect(await page.textContent("#login-error")).toContain("not accepted");
        expect(await page.locator("[data-node], .waterfall, #log").count()).toBe(0);
      }
      // A forged cookie is no better than none.
      await browser.context.addCookies([{ name: "sam_admin", value: "samadm_forged_forged_forged_forged", url: base }]);
      const res = await page.goto(`${base}/admin/nodes/${ok.id}`);
      expect(res?.status()).toBe(401);
      expect(await page.locator(".waterfall").count()).toBe(0);
    } finally {
      await page.close();
      await browser.context.clearCookies();
    }
  }, 20_000);

  test(
    "log in, open a node: the waterfall shows the phases in order with widths proportional to durations",
    async () => {
      const page = await loggedInPage();
      try {
        const cookie = (await browser.context.cookies(`${base}/admin/nodes`)).find((c) => c.name === "sam_admin")!;
        expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/admin" });
        expect(cookie.value).not.toContain(ADMIN_TOKEN);
        await Promise.all([
          page.waitForURL(`${base}/admin/nodes/${ok.id}`),
          page.click(`a[href='/admin/nodes/${ok.id}']`),
        ]);

        const labels = await page.$$eval(".wf-row[data-kind]", (rows) => rows.map((r) => r.getAttribute("data-phase")));
        expect(labels).toEqual([
          "create call → server running",
          "server running → agent ready",
          "kernel boot → agent start",
          ...BOOT_PHASES.map((p) => p.name),
        ]);
        const bars = await Promise.all(
          BOOT_PHASES.map(async (p) => (await page.locator(`.wf-row[data-phase="${p.name}"] .wf-bar`).boundingBox())!),
        );
        const pxPerSecond = bars.map((b, i) => b.width / BOOT_PHASES[i]!.duration);
        for (const r of pxPerSecond) expect(Math.abs(r - pxPerSecond[2]!)).toBeLessThan(0.06 * pxPerSecond[2]! + 0.3);
        // One axis: each phase starts where its start time lies (phases here run back to back).
        for (let i = 1; i < bars.length; i++) {
          expect(bars[i]!.x).toBeGreaterThan(bars[i - 1]!.x);
          expect(Math.abs(bars[i]!.x - (bars[i - 1]!.x + bars[i - 1]!.width))).toBeLessThan(1.5);
        }
        // The provider spans come before the boot phases on the same axis.
        const create =
          (await page.locator('.wf-row[data-phase="create call → server running"] .wf-bar').boundingBox())!;
        expect(create.x).toBeLessThan(bars[0]!.x);
      } finally {
        await page.close();
      }
    },
    20_000,
  );

  test("the charts render points, and the window switch redraws them", async () => {
    const page = await loggedInPage();
    try {
      await page.goto(`${base}/admin/nodes/${ok.id}`);
      for (const name of ["cpu", "memory", "disk"]) {
        const circles = page.locator(`figure[data-chart=${name}] circle.pt`);
        expect(await circles.count()).toBeGreaterThanOrEqual(59);
        const svg = (await page.locator(`figure[data-chart=${name}] svg`).boundingBox())!;
        const first = (await circles.first().boundingBox())!;
        const last = (await circles.last().boundingBox())!;
        expect(svg.height).toBeGreaterThan(60);
        expect(last.x).toBeGreaterThan(first.x);
        expect(first.y).toBeGreaterThanOrEqual(svg.y);
        expect(last.y + last.height).toBeLessThanOrEqual(svg.y + svg.height);
      }
      await Promise.all([page.waitForURL(/window=24h/), page.click("#windows a:text('24h')")]);
      expect(await page.getAttribute("#windows a.current", "href")).toContain("window=24h");
      expect(Number(await page.getAttribute("figure[data-chart=cpu]", "data-points"))).toBe(59);
    } finally {
      await page.close();
    }
  }, 20_000);

  test("the Download events DB and Download metrics DB buttons deliver files that open as SQLite", async () => {
    const page = await loggedInPage();
    try {
      await page.goto(`${base}/admin/nodes/${ok.id}`);
      for (const [button, table] of [["#download-events", "events"], ["#download-metrics", "metrics"]] as const) {
        const [download] = await Promise.all([page.waitForEvent("download"), page.click(button)]);
        expect(download.suggestedFilename()).toBe(`${ok.id}-${table}.db`);
        const path = join(browser.dir, download.suggestedFilename());
        await download.saveAs(path);
        expect(readFileSync(path).subarray(0, 15).toString()).toBe("SQLite format 3");
        const db = new Database(path, { readonly: true });
        expect(db.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
        expect(db.query(`SELECT count(*) AS n FROM ${table}`).get()).toEqual({ n: 25 });
        db.close();
      }
    } finally {
      await page.close();
    }
  }, 20_000);

  test("an unreachable node shows its message, on its page and when a download is tried", async () => {
    const page = await loggedInPage();
    try {
      await page.goto(`${base}/admin/nodes/${gone.id}`);
      const banner = page.locator("#unreachable");
      expect(await banner.isVisible()).toBe(true);
      expect(await banner.textContent()).toContain(`the agent of node ${gone.id} is unreachable`);
      expect(await banner.textContent()).toContain("Last known: status ready");
      expect(await page.locator('.wf-row[data-status="unterminated"]').count()).toBe(1);
      expect(await page.locator('.wf-row[data-status="failed"]').count()).toBe(1);
      expect(await page.locator(".wf-mark-unterminated").textContent()).toContain("unterminated");
      const res = await page.goto(`${base}/admin/nodes/${gone.id}/events.db`);
      expect([502, 504]).toContain(res!.status());
      expect(await page.locator("#unreachable").textContent()).toContain(`the agent of node ${gone.id} is unreachable`);
    } finally {
      await page.close();
    }
  }, 20_000);

  test("a running task's log follows live over SSE", async () => {
    const page = await loggedInPage();
    try {
      await page.goto(`${base}/admin/tasks/${taskId}`);
      await page.waitForFunction(() => document.getElementById("log-state")?.textContent === "following live…");
      expect(ok.agent.dispatches.map((d) => d.taskId)).toContain(taskId);
      await ok.agent.logs(taskId, ["added --json to src/cli.ts"]);
      await page.locator("#log li", { hasText: "added --json to src/cli.ts" }).waitFor({ timeout: 5_000 });
      await ok.agent.finish(taskId, { summary: "Added the flag." });
      await page.waitForFunction(() => document.querySelector("#task-status .badge")?.textContent === "succeeded");
      await page.waitForFunction(() => document.getElementById("log-state")?.textContent?.startsWith("task ended"));
      // Lines already on the page are not repeated by the stream.
      expect(await page.locator("#log li", { hasText: "reading src/cli.ts" }).count()).toBe(1);
    } finally {
      await page.close();
    }
  }, 20_000);

  test("Log out ends the session: the old cookie, put back, sees only the login form", async () => {
    await browser.context.clearCookies();
    const page = await loggedInPage();
    try {
      const before = (await browser.context.cookies(`${base}/admin/nodes`)).find((c) => c.name === "sam_admin")!;
      expect((await served.call("GET", "/api/sessions").then((r) => r.json())).data.length).toBeGreaterThan(0);
      await Promise.all([page.waitForURL(`${base}/admin/login`), page.click("button:has-text('Log out')")]);
      await browser.context.addCookies([{ name: "sam_admin", value: before.value, url: `${base}/admin` }]);
      const res = await page.goto(`${base}/admin/nodes`);
      expect(res?.status()).toBe(401);
      expect(await page.locator("[data-node]").count()).toBe(0);
      expect(await page.textContent("#login-error")).toContain("Log in again");
    } finally {
      await page.close();
      await browser.context.clearCookies();
    }
  }, 20_000);

  test("the node page reads on a phone and on a laptop (screenshot kept in docs/)", async () => {
    const page = await loggedInPage();
    try {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(`${base}/admin/nodes/${ok.id}`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow).toBeLessThanOrEqual(0);
      const bar = (await page.locator(`.wf-row[data-phase="node-install"] .wf-bar`).boundingBox())!;
      expect(bar.width).toBeGreaterThan(50);
      await page.screenshot({ path: shotPath("admin-node-phone.png"), fullPage: true });
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.goto(`${base}/admin/nodes/${ok.id}`);
      const png = await page.screenshot({ path: shotPath("admin-node.png"), fullPage: true });
      expect(png.subarray(1, 4).toString()).toBe("PNG");
    } finally {
      await page.close();
    }
  }, 20_000);
});
