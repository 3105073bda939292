// Issue 17's "done when", in a real browser: three tabs of one user in headless Chromium, each running
// /webtalk.js from the application's own origin, all receive every whisper and shout while the backend
// sees the user online once; a fourth tab takes the oldest one's place and that tab is told why.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Browser, Page } from "playwright-core";
import type { Webtalk } from "../src/server.ts";
import { chromiumMissing, launchChromium } from "./chromium.ts";
import { ControlClient, newUser, startTestServer, WAIT_MS } from "./helpers.ts";

const skip = chromiumMissing();

let chromium: Browser;
let server: Webtalk;
let ctl: ControlClient;
let site: ReturnType<typeof Bun.serve>;

beforeAll(async () => {
  if (skip) return;
  chromium = await launchChromium();
  server = await startTestServer({ sessions: 3 });
  ctl = await ControlClient.connect(server.private.port);
  const base = `http://127.0.0.1:${server.public.port}`;
  // The application's own site, another origin than webtalk's.
  site = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () => new Response(page(base), { headers: { "Content-Type": "text/html; charset=utf-8" } }),
  });
});

afterAll(async () => {
  if (skip) return;
  await chromium.close();
  site.stop(true);
  ctl.close();
  await server.stop();
});

function page(base: string): string {
  return `<!doctype html><script type="module">
  import { connect } from "${base}/webtalk.js";
  const params = new URLSearchParams(location.search);
  window.got = [];
  window.closes = [];
  connect(params.get("ws"), params.get("token"), {
    onMessage: (text) => window.got.push(text),
    onOpen: () => (window.opened = true),
    onClose: (info) => window.closes.push(info),
  });
</script>`;
}

type PageGlobals = { got: string[]; closes: { code: number; reason: string; final: boolean; sessionLimit?: true }[] };
const got = (tab: Page, text: string) => tab.waitForFunction((t) => (globalThis as unknown as PageGlobals).got.includes(t), text);

async function stats(): Promise<Record<string, number>> {
  const reply = await ctl.ok("[stats]");
  return Object.fromEntries(reply.split(" ").map((kv) => [kv.split("=")[0]!, Number(kv.split("=")[1])]));
}

describe.skipIf(Boolean(skip))("three tabs of one user in Chromium (--sessions 3)", () => {
  test("every tab receives everything, the backend sees one user, a fourth tab replaces the oldest and it is told why", async () => {
    const user = await newUser(ctl);
    const channel = await ctl.ok("[newchannel]");
    await ctl.ok(`[join] ${channel}!${user.id}`);
    const context = await chromium.newContext();
    const url = `http://127.0.0.1:${site.port}/?ws=${encodeURIComponent(server.publicUrl)}&token=${encodeURIComponent(user.token)}`;
    const before = await stats();
    const tabs: Page[] = [];
    for (let i = 0; i < 3; i++) {
      const tab = await context.newPage();
      tab.setDefaultTimeout(WAIT_MS);
      await tab.goto(url);
      tabs.push(tab);
      // Each tab is logged in once the server counts it.
      for (let n = 0; n < 5_000 && (await stats()).sessions! < before.sessions! + i + 1; n++) await ctl.ok("[ping]");
    }
    expect((await stats()).online! - before.online!).toBe(1);
    expect(await ctl.call(`[count] ${channel}`)).toBe("[ok] 1!1");
    await ctl.ok(`[whisper] ${user.id}!to every tab`);
    await ctl.ok(`[shout] ${channel}!shout to every tab`);
    for (const tab of tabs) {
      await got(tab, "to every tab");
      await got(tab, "shout to every tab");
    }

    const fourth = await context.newPage();
    await fourth.goto(url);
    await tabs[0]!.waitForFunction(() => (globalThis as unknown as PageGlobals).closes.length > 0);
    const [closed] = await tabs[0]!.evaluate(() => (globalThis as unknown as PageGlobals).closes);
    expect(closed).toEqual({ code: 4002, reason: "session limit: replaced by a newer login", final: true, sessionLimit: true });
    await ctl.ok(`[whisper] ${user.id}!after the fourth`);
    for (const tab of [tabs[1]!, tabs[2]!, fourth]) await got(tab, "after the fourth");
    expect(await tabs[0]!.evaluate(() => (globalThis as unknown as PageGlobals).got)).not.toContain("after the fourth");
    await context.close();
  }, 60_000);
});
