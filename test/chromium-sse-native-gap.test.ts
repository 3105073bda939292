// Chromium's own EventSource (no library) away past the replay window: the browser reconnects by
// itself with Last-Event-ID (after the server's retry:), and must get a `gap` event naming the
// channel, then what the window still holds, in order, then live. Before the window is passed, the
// same reconnect resumes with nothing lost and no gap.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Browser, Page } from "playwright-core";
import type { Webtalk } from "../src/server.ts";
import { chromiumMissing, launchChromium } from "./chromium.ts";
import { ControlClient, newUser, startTestServer, WAIT_MS } from "./helpers.ts";
import { UpgradeRefusingProxy } from "./http-proxy.ts";

const skip = chromiumMissing();
/** The server's retry: is 1–3 s; the browser's reconnect comes after it. */
const RECONNECT_MS = 10_000;
let chromium: Browser;
let server: Webtalk;
let ctl: ControlClient;

beforeAll(async () => {
  if (skip) return;
  chromium = await launchChromium();
  server = await startTestServer({ replayCount: 3 });
  ctl = await ControlClient.connect(server.private.port);
});

afterAll(async () => {
  if (skip) return;
  await chromium.close();
  ctl.close();
  await server.stop();
});

/** A page served by the relay itself (same origin), with a native EventSource logging every event. */
async function nativePage(proxy: UpgradeRefusingProxy, token: string): Promise<Page> {
  const page = await (await chromium.newContext()).newPage();
  page.setDefaultTimeout(WAIT_MS);
  await page.goto(`http://127.0.0.1:${proxy.port}/webtalk.js`);
  await page.evaluate((url) => {
    const w = globalThis as unknown as { log: string[]; opens: number; ats: string[] };
    w.log = [];
    w.ats = [];
    w.opens = 0;
    // The browser's EventSource (Bun's types declare another constructor).
    const Native = (globalThis as unknown as { EventSource: new (url: string) => EventSource }).EventSource;
    const source = new Native(url);
    source.onopen = () => w.opens++;
    // The event's own SOURCE:OFFSET is the last item of its id.
    source.onmessage = (event) => w.log.push(`${event.data} @${/(u|\d+):\d+$/.exec(event.lastEventId)?.[0]}`);
    source.addEventListener("gap", (event) => w.log.push(`gap ${(event as MessageEvent).data}`));
    source.addEventListener("at", (event) => w.ats.push((event as MessageEvent).lastEventId));
  }, `http://127.0.0.1:${proxy.port}/webtalk/events?login=${encodeURIComponent(token)}`);
  await page.waitForFunction(() => (globalThis as unknown as { opens: number }).opens === 1);
  return page;
}

const log = (page: Page) => page.evaluate(() => (globalThis as unknown as { log: string[] }).log);

describe.skipIf(Boolean(skip))("native EventSource, reconnecting by itself", () => {
  for (const away of [2, 10]) {
    const past = away > 3;
    test(`${away} shouts while away (window 3): ${past ? "gap, then the window's 3, then live" : "both, then live, no gap"}`, async () => {
      const proxy = new UpgradeRefusingProxy(server.public.port);
      try {
        const user = await newUser(ctl);
        const channel = await ctl.ok("[newchannel]");
        await ctl.ok(`[join] ${channel}!${user.id}`);
        const page = await nativePage(proxy, user.token);
        await ctl.ok(`[shout] ${channel}!s1`);
        await page.waitForFunction(() => (globalThis as unknown as { log: string[] }).log.length === 1);
        proxy.down = true;
        proxy.cut();
        for (let i = 2; i <= away + 1; i++) await ctl.ok(`[shout] ${channel}!s${i}`);
        proxy.down = false;
        await page.waitForFunction(() => (globalThis as unknown as { opens: number }).opens >= 2, undefined, { timeout: RECONNECT_MS });
        // The browser's own reconnect carried the position.
        const resumed = proxy.requests.filter((r) => r.includes("/events?")).at(-1);
        expect(resumed).toBeDefined();
        const live = away + 2;
        await ctl.ok(`[shout] ${channel}!s${live}`);
        await page.waitForFunction((t) => (globalThis as unknown as { log: string[] }).log.some((l) => l.startsWith(t)), `s${live} `);
        const expected = [`s1 @${channel}:1`];
        if (past) expected.push(`gap ${channel}`);
        for (let i = past ? away - 1 : 2; i <= away + 1; i++) expected.push(`s${i} @${channel}:${i}`);
        expected.push(`s${live} @${channel}:${live}`);
        expect(await log(page)).toEqual(expected);
        await page.context().close();
      } finally {
        proxy.stop();
      }
    }, 30_000);
  }

  test("a stream cut before it heard anything resumes its channels all the same (the at event's id)", async () => {
    const proxy = new UpgradeRefusingProxy(server.public.port);
    try {
      const user = await newUser(ctl);
      const channel = await ctl.ok("[newchannel]");
      await ctl.ok(`[join] ${channel}!${user.id}`);
      const page = await nativePage(proxy, user.token);
      await page.waitForFunction(() => (globalThis as unknown as { ats: string[] }).ats.length === 1);
      proxy.down = true;
      proxy.cut();
      await ctl.ok(`[shout] ${channel}!s1`);
      await ctl.ok(`[shout] ${channel}!s2`);
      proxy.down = false;
      await page.waitForFunction(() => (globalThis as unknown as { opens: number }).opens >= 2, undefined, { timeout: RECONNECT_MS });
      await ctl.ok(`[shout] ${channel}!s3`);
      await page.waitForFunction(() => (globalThis as unknown as { log: string[] }).log.some((l) => l.startsWith("s3 ")));
      expect(await log(page)).toEqual([`s1 @${channel}:1`, `s2 @${channel}:2`, `s3 @${channel}:3`]);
      await page.context().close();
    } finally {
      proxy.stop();
    }
  }, 30_000);
});
