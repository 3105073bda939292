// Server-Sent Events in a real browser: a page on another origin with Chromium's native EventSource,
// and /webtalk.js falling back from WebSocket to SSE behind a proxy that refuses upgrades, then
// resuming after the network drops.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Browser, Page } from "playwright-core";
import type { Webtalk } from "../src/server.ts";
import { chromiumMissing, launchChromium } from "./chromium.ts";
import { ControlClient, newUser, startTestServer, WAIT_MS } from "./helpers.ts";
import { UpgradeRefusingProxy } from "./http-proxy.ts";

const skip = chromiumMissing();

let chromium: Browser;
let server: Webtalk;
let ctl: ControlClient;
let events: ControlClient;
/** The application's own site: another port, so another origin. */
let site: ReturnType<typeof Bun.serve>;
let siteOrigin: string;

beforeAll(async () => {
  if (skip) return;
  site = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (request) => {
      const { pathname } = new URL(request.url);
      const body = pathname === "/native" ? nativePage : modulePage;
      return new Response(body, { headers: { "Content-Type": "text/html; charset=utf-8" } });
    },
  });
  siteOrigin = `http://127.0.0.1:${site.port}`;
  chromium = await launchChromium();
  // Only the application's origin may connect: CORS must work under --origins.
  server = await startTestServer({ origins: [siteOrigin] });
  ctl = await ControlClient.connect(server.private.port);
  events = await ControlClient.connect(server.private.port);
  await events.ok("[listen]");
  expect(await events.replies.next("[epoch]")).toStartWith("[epoch] ");
});

afterAll(async () => {
  if (skip) return;
  await chromium.close();
  ctl.close();
  events.close();
  await server.stop();
  void site.stop(true);
});

async function openPage(url: string): Promise<Page> {
  const page = await (await chromium.newContext()).newPage();
  page.setDefaultTimeout(WAIT_MS);
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(url);
  expect(errors).toEqual([]);
  return page;
}

/** The next event about `user` (an earlier test's user may still be going offline). */
async function eventAbout(user: { id: number }, what: string): Promise<string> {
  for (;;) {
    const event = await events.replies.next(what);
    if (event.endsWith(` ${user.id}`)) return event;
  }
}

const got = (page: Page) => page.evaluate(() => (globalThis as unknown as { got: string[] }).got);
const received = (page: Page, text: string) =>
  page.waitForFunction((t) => (globalThis as unknown as { got: string[] }).got.includes(t), text);

describe.skipIf(Boolean(skip))("Server-Sent Events in Chromium", () => {
  test("a page on another origin receives a whisper with newlines through the native EventSource", async () => {
    const user = await newUser(ctl);
    const events_ = `http://127.0.0.1:${server.public.port}/webtalk/events?login=${encodeURIComponent(user.token)}`;
    const page = await openPage(`${siteOrigin}/native?url=${encodeURIComponent(events_)}`);
    expect(await eventAbout(user, "[online]")).toBe(`[online] ${user.id}`);
    await ctl.ok(`[whisper] ${user.id}!hello\nfrom SSE`);
    await received(page, "hello\nfrom SSE");
    const ids = await page.evaluate(() => (globalThis as unknown as { ids: string[] }).ids);
    // The login's starting point for channel 1 (its at event), then the whisper's own source, last.
    expect(ids.at(-1)).toMatch(/^[A-Za-z0-9_-]+!1:\d+,u:1$/);
    // A kick ends the stream with a close event; the page closes its EventSource, so no reconnect.
    await ctl.ok(`[kick] ${user.id}`);
    await received(page, "close 4005 kicked");
    expect(await eventAbout(user, "[offline]")).toBe(`[offline] ${user.id}`);
    expect(await ctl.ok(`[online] ${user.id}`)).toBe("0");
    await page.context().close();
  });

  test("/webtalk.js with transport auto falls back to SSE when upgrades are refused, and resumes after a cut", async () => {
    const proxy = new UpgradeRefusingProxy(server.public.port);
    try {
      const user = await newUser(ctl);
      const channel = Number(await ctl.ok("[newchannel]"));
      await ctl.ok(`[join] ${channel}!${user.id}`);
      const base = `http://127.0.0.1:${proxy.port}`;
      const page = await openPage(`${siteOrigin}/module?base=${encodeURIComponent(base)}&token=${encodeURIComponent(user.token)}`);
      expect(await eventAbout(user, "[online]")).toBe(`[online] ${user.id}`);
      expect(proxy.refused).toBeGreaterThan(0);
      expect(await page.evaluate(() => (globalThis as unknown as { connection: { transport: string } }).connection.transport)).toBe("sse");
      await ctl.ok(`[whisper] ${user.id}!before`);
      await ctl.ok(`[shout] ${channel}!shout before`);
      await received(page, "shout before");

      proxy.cut();
      expect(await eventAbout(user, "[offline]")).toBe(`[offline] ${user.id}`);
      for (let i = 1; i <= 3; i++) {
        await ctl.ok(`[whisper] ${user.id}!away ${i}`);
        await ctl.ok(`[shout] ${channel}!shout away ${i}`);
      }
      expect(await eventAbout(user, "[online] again")).toBe(`[online] ${user.id}`);
      await ctl.ok(`[whisper] ${user.id}!after`);
      await received(page, "after");
      await received(page, "shout away 3");
      const all = await got(page);
      // Everything once; each source in order; no gap reported.
      expect(all.toSorted()).toEqual(
        ["before", "shout before", "away 1", "away 2", "away 3", "shout away 1", "shout away 2", "shout away 3", "after"].toSorted(),
      );
      expect(all.filter((m) => m.startsWith("away") || m === "after" || m === "before")).toEqual(["before", "away 1", "away 2", "away 3", "after"]);
      expect(all.filter((m) => m.startsWith("shout"))).toEqual(["shout before", "shout away 1", "shout away 2", "shout away 3"]);
      expect(await page.evaluate(() => (globalThis as unknown as { gaps: string[] }).gaps)).toEqual([]);
      const closes = await page.evaluate(() => (globalThis as unknown as { closes: number[] }).closes);
      expect(closes.at(-1)).toBe(1006);
      await page.context().close();
    } finally {
      proxy.stop();
    }
  });

  test("/webtalk.js with transport auto also falls back when the upgrade succeeds but nothing comes through", async () => {
    const proxy = new UpgradeRefusingProxy(server.public.port, "swallow");
    try {
      const user = await newUser(ctl);
      const base = `http://127.0.0.1:${proxy.port}`;
      const page = await openPage(
        `${siteOrigin}/module?base=${encodeURIComponent(base)}&token=${encodeURIComponent(user.token)}&fallbackAfter=300`,
      );
      // The swallowed WebSocket never logged in; after fallbackAfter the page is on SSE.
      expect(await eventAbout(user, "[online]")).toBe(`[online] ${user.id}`);
      expect(proxy.refused).toBe(1);
      expect(await page.evaluate(() => (globalThis as unknown as { connection: { transport: string } }).connection.transport)).toBe("sse");
      await ctl.ok(`[whisper] ${user.id}!through SSE`);
      await received(page, "through SSE");
      await page.context().close();
    } finally {
      proxy.stop();
    }
  });

  test("/webtalk.js over SSE reports a wrong token as a final 4001 and stops, as over WebSocket", async () => {
    const user = await newUser(ctl);
    const base = `http://127.0.0.1:${server.public.port}`;
    const page = await openPage(
      `${siteOrigin}/module?base=${encodeURIComponent(base)}&token=${encodeURIComponent(`${user.id}!wrong`)}&transport=sse`,
    );
    await page.waitForFunction(() => (globalThis as unknown as { connection: { state: string } }).connection.state === "closed");
    const finals = await page.evaluate(() => (globalThis as unknown as { finals: unknown[] }).finals);
    expect(finals).toEqual([{ code: 4001, reason: "login failed", final: true }]);
    await page.context().close();
  });
});

/** Chromium's own EventSource, nothing else: each message and each close event goes to `got`. */
const nativePage = `<!doctype html><script>
  const url = new URLSearchParams(location.search).get("url");
  window.got = [];
  window.ids = [];
  const source = new EventSource(url);
  source.onmessage = (event) => { window.got.push(event.data); window.ids.push(event.lastEventId); };
  // A final condition: the page must close the EventSource, or the browser reconnects.
  source.addEventListener("close", (event) => { window.got.push("close " + event.data); source.close(); });
</script>`;

/** /webtalk.js as an application would use it, with the default transport ("auto"). */
const modulePage = `<!doctype html><script type="module">
  const params = new URLSearchParams(location.search);
  const base = params.get("base");
  const { connect } = await import(base + "/webtalk.js");
  window.got = [];
  window.gaps = [];
  window.closes = [];
  window.finals = [];
  window.connection = connect(base + "/webtalk", params.get("token"), {
    minDelay: 50,
    fallbackAfter: Number(params.get("fallbackAfter") ?? 3000),
    transport: params.get("transport") ?? undefined,
    onMessage: (text) => window.got.push(text),
    onGap: (source) => window.gaps.push(source),
    onClose: (info) => {
      window.closes.push(info.code);
      if (info.final) window.finals.push({ code: info.code, reason: info.reason, final: info.final });
    },
  });
</script>`;
