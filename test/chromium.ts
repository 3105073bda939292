// Debian's Chromium, driven by playwright-core, for tests that need a real browser.

import { afterAll, beforeAll } from "bun:test";
import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { WAIT_MS } from "./helpers.ts";

export const CHROMIUM = "/usr/bin/chromium";

/**
 * Why Chromium tests cannot run here, or undefined when they can. In CI (CI=true) Chromium must be
 * there (.ci/run installs it): a missing one fails the run instead of skipping quietly.
 */
export function chromiumMissing(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  const why = `${CHROMIUM} is missing (apt-get install -y chromium)`;
  if (process.env.CI) throw new Error(`${why}: CI must run the browser tests`);
  console.warn(`SKIPPING the Chromium tests: ${why}`);
  return why;
}

/** Launches headless Chromium; playwright gives it a fresh temporary profile (--user-data-dir) each time. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    timeout: 15_000,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * For a test file: Chromium, and a site on loopback (an origin other than the server's) serving `html()`
 * at `/`, both started before the file's tests and ended after; nothing when `skip` says why not.
 * `open(query)` opens a fresh page (its own context) at `/?query`.
 */
export function useChromiumSite(skip: string | undefined, html: () => string): { open(query: string): Promise<Page> } {
  let browser: Browser | undefined;
  let site: ReturnType<typeof Bun.serve> | undefined;
  beforeAll(async () => {
    if (skip) return;
    site = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(html(), { headers: { "Content-Type": "text/html" } }) });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    void site?.stop(true);
  });
  return {
    async open(query) {
      const page = await (await browser!.newContext()).newPage();
      page.setDefaultTimeout(WAIT_MS);
      await page.goto(`http://127.0.0.1:${site!.port}/?${query}`);
      return page;
    },
  };
}
