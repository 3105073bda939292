// Debian's Chromium, driven by playwright-core, for tests that need a real browser.

import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

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
