// A real browser: the demo page driven in headless Chromium, and /webtalk.js loaded by a page on
// another origin (as an ES module and as a classic script), including a reconnection after the
// network drops under Chromium's own WebSocket.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import type { Webtalk } from "../src/server.ts";
import { chromiumMissing, launchChromium } from "./chromium.ts";
import { ControlClient, newUser, startTestServer, WAIT_MS } from "./helpers.ts";
import { ROOT } from "./process.ts";
import { TcpProxy } from "./proxy.ts";

const skip = chromiumMissing();
/** Where the demo test saves its screenshot; docs/demo.png in the README is a copy of it. */
export const SCREENSHOT = join(ROOT, ".tmp", "demo.png");

let chromium: Browser;
let server: Webtalk;
let ctl: ControlClient;
let base: string;

beforeAll(async () => {
  if (skip) return;
  chromium = await launchChromium();
  server = await startTestServer({ demo: true });
  ctl = await ControlClient.connect(server.private.port);
  base = `http://127.0.0.1:${server.public.port}`;
});

afterAll(async () => {
  if (skip) return;
  await chromium.close();
  ctl.close();
  await server.stop();
});

async function openPage(url: string, viewport = { width: 1100, height: 600 }): Promise<Page> {
  const context = await chromium.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(url);
  expect(errors).toEqual([]);
  return page;
}

const texts = (page: Page) => page.$$eval(".message .text", (items) => items.map((item) => item.textContent ?? ""));
const userOf = async (page: Page) => Number((await page.textContent("#me"))!.replace("user ", ""));

describe.skipIf(Boolean(skip))("the demo in Chromium", () => {
  test("two pages log in; a whisper reaches one, a shout both, chat goes through the backend, a kick shows", async () => {
    const a = await openPage(`${base}/`);
    const b = await openPage(`${base}/`);
    await a.waitForSelector("#status.open");
    await b.waitForSelector("#status.open");
    const [idA, idB] = [await userOf(a), await userOf(b)];
    expect(idA).not.toBe(idB);

    // Who is online, as the demo's backend hears it from [listen] and shouts it.
    await a.waitForSelector(`#online li[data-user="${idB}"]`);
    await b.waitForSelector(`#online li[data-user="${idA}"]`);

    await ctl.ok(`[whisper] ${idA}!only for user ${idA}`);
    await ctl.ok("[shout] 1!for every page");
    await a.waitForSelector(".message >> text=for every page");
    await b.waitForSelector(".message >> text=for every page");
    expect(await texts(a)).toEqual([`only for user ${idA}`, "for every page"]);
    // B's messages arrive in command order: had the whisper reached B, it would be here before the shout.
    expect(await texts(b)).toEqual(["for every page"]);
    // webtalk.v2 tells the page where each message came from.
    const labels = await a.$$eval(".message .from", (items) => items.map((item) => item.textContent?.split(" · ")[0]));
    expect(labels).toEqual(["whisper to you", "shout to channel 1"]);

    await b.fill("#text", `hello from user ${idB}`);
    await b.click("#say button");
    await a.waitForSelector(`.message.chat >> text=hello from user ${idB}`);
    mkdirSync(join(ROOT, ".tmp"), { recursive: true });
    await a.screenshot({ path: SCREENSHOT });
    expect((await Bun.file(SCREENSHOT).bytes()).subarray(1, 4)).toEqual(new TextEncoder().encode("PNG"));

    await ctl.ok(`[kick] ${idB}`);
    await b.waitForSelector("#status.closed");
    expect(await b.textContent("#status")).toBe("closed: kicked (4005)");
    expect((await texts(b)).at(-1)).toContain("kicked (4005)");
    await a.waitForSelector(`#online li[data-user="${idB}"]`, { state: "detached" });
    await a.context().close();
    await b.context().close();
  });
});

describe.skipIf(Boolean(skip))("/webtalk.js in Chromium, loaded by a page on another origin", () => {
  // The application's own site: a different port is a different origin, so the module needs CORS.
  let site: ReturnType<typeof Bun.serve>;
  beforeAll(() => {
    if (skip) return;
    site = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (request) => {
        const { pathname } = new URL(request.url);
        const body = pathname === "/classic" ? classicPage(base) : modulePage(base);
        return new Response(body, { headers: { "Content-Type": "text/html; charset=utf-8" } });
      },
    });
  });
  afterAll(() => void site?.stop(true));

  const pageUrl = (kind: string, ws: string, token: string) =>
    `http://127.0.0.1:${site.port}/${kind}?ws=${encodeURIComponent(ws)}&token=${encodeURIComponent(token)}`;
  const received = (page: Page, text: string) =>
    page.waitForFunction((t) => (globalThis as unknown as { got: string[] }).got.includes(t), text);

  test.each(["module", "classic"])("as %s: logs in and receives a whisper", async (kind) => {
    const user = await newUser(ctl);
    const page = await openPage(pageUrl(kind, server.publicUrl, user.token));
    await ctl.ok(`[whisper] ${user.id}!to the ${kind} page`);
    await received(page, `to the ${kind} page`);
    await page.context().close();
  });

  test("after the network drops, Chromium reconnects and resumes (webtalk.v2): what it missed arrives once", async () => {
    const proxy = new TcpProxy(server.public.port);
    proxy.up();
    try {
      const user = await newUser(ctl);
      const channel = Number(await ctl.ok("[newchannel]"));
      await ctl.ok(`[join] ${channel}!${user.id}`);
      const page = await openPage(pageUrl("module", `ws://127.0.0.1:${proxy.port}/webtalk`, user.token));
      await ctl.ok(`[whisper] ${user.id}!before`);
      await received(page, "before");
      await ctl.ok(`[shout] ${channel}!shout before`);
      await received(page, "shout before");

      proxy.down();
      proxy.cut();
      await page.waitForFunction(() => (globalThis as unknown as { closes: number[] }).closes.length > 0);
      // 1006 (abnormal closure) for the cut, and again for each attempt refused while the network is down.
      const closes = await page.evaluate(() => (globalThis as unknown as { closes: number[] }).closes);
      expect(closes.every((code) => code === 1006)).toBe(true);
      await ctl.ok(`[shout] ${channel}!shout while away`);
      await ctl.ok(`[whisper] ${user.id}!whisper while away`);
      proxy.up();
      await ctl.ok(`[whisper] ${user.id}!after`);
      await received(page, "after");
      await received(page, "shout while away");
      // This server runs the demo, whose backend shouts who is online to channel 1: those are left out.
      const all = await page.evaluate(() => (globalThis as unknown as { got: string[] }).got);
      const got = all.filter((m) => !m.startsWith('{"demo":'));
      expect(got.toSorted()).toEqual(["after", "before", "shout before", "shout while away", "whisper while away"]);
      expect(got.indexOf("whisper while away")).toBeLessThan(got.indexOf("after"));
      await page.context().close();
    } finally {
      proxy.stop();
    }
  });
});

const pageScript = `
  const params = new URLSearchParams(location.search);
  window.got = [];
  window.closes = [];
  const options = {
    minDelay: 50,
    onMessage: (text) => window.got.push(text),
    onClose: (info) => window.closes.push(info.code),
  };`;

function modulePage(base: string): string {
  return `<!doctype html><script type="module">
  import { connect } from "${base}/webtalk.js";
  ${pageScript}
  connect(params.get("ws"), params.get("token"), options);
</script>`;
}

function classicPage(base: string): string {
  return `<!doctype html><script src="${base}/webtalk.global.js"></script><script>
  ${pageScript}
  webtalk.connect(params.get("ws"), params.get("token"), options);
</script>`;
}
