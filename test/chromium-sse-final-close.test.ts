// A kicked, killed or replaced user's stream in Chromium, through a relay that counts requests: the
// page hears onClose with the code as final and makes no further request (/webtalk.js with transport
// "sse" and "auto", and the native EventSource that closes itself on the close event).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Browser, Page } from "playwright-core";
import type { Webtalk } from "../src/server.ts";
import { chromiumMissing, launchChromium } from "./chromium.ts";
import { ControlClient, newUser, startTestServer, WAIT_MS, type User } from "./helpers.ts";
import { UpgradeRefusingProxy } from "./http-proxy.ts";
import { eventsUrl, SseClient } from "./sse-client.ts";

const skip = chromiumMissing();
/** Longer than several reconnects of the page (maxDelay 200 ms) and than EventSource's retry: (at most 3 s). */
const NO_RECONNECT_MS = 3_500;

let chromium: Browser;
let site: ReturnType<typeof Bun.serve>;
let siteOrigin: string;
/** --sessions 1 (the default) and --sessions 2, each behind a relay that refuses upgrades and counts requests. */
const servers: { server: Webtalk; ctl: ControlClient; proxy: UpgradeRefusingProxy }[] = [];

beforeAll(async () => {
  if (skip) return;
  site = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (request) =>
      new Response(new URL(request.url).pathname === "/native" ? nativePage : modulePage, { headers: { "Content-Type": "text/html" } }),
  });
  siteOrigin = `http://127.0.0.1:${site.port}`;
  chromium = await launchChromium();
  for (const sessions of [1, 2]) {
    const server = await startTestServer({ sessions });
    servers.push({ server, ctl: await ControlClient.connect(server.private.port), proxy: new UpgradeRefusingProxy(server.public.port) });
  }
});

afterAll(async () => {
  if (skip) return;
  await chromium.close();
  for (const { server, ctl, proxy } of servers) {
    proxy.stop();
    ctl.close();
    await server.stop();
  }
  void site.stop(true);
});

/** The requests for `user`'s event stream that reached the relay. */
function streamRequests(proxy: UpgradeRefusingProxy, user: User): number {
  return proxy.requests.filter((r) => r.includes("/events?") && new URLSearchParams(r.split("?")[1]).get("login") === user.token).length;
}

async function openPage(path: string): Promise<Page> {
  const page = await (await chromium.newContext()).newPage();
  page.setDefaultTimeout(WAIT_MS);
  await page.goto(`${siteOrigin}${path}`);
  return page;
}

const pageVar = <T,>(page: Page, name: string) => page.evaluate((n) => (globalThis as unknown as Record<string, T>)[n]!, name);

/** The page is live: a whisper reaches it. */
async function live(page: Page, ctl: ControlClient, user: User): Promise<void> {
  const marker = `live-${Math.random()}`;
  await ctl.ok(`[whisper] ${user.id}!${marker}`);
  // The module page defines `got` once its import is in: until then, not yet.
  await page.waitForFunction((t) => (globalThis as unknown as { got?: string[] }).got?.includes(t), marker);
}

type Action = "kick" | "kill" | "replace" | "session limit";
const expected: Record<Action, { code: number; reason: string }> = {
  kick: { code: 4005, reason: "kicked" },
  kill: { code: 4004, reason: "user killed" },
  replace: { code: 4002, reason: "replaced by another login" },
  "session limit": { code: 4002, reason: "session limit: replaced by a newer login" },
};

/** Does `action` to `user` and returns the streams it opened (to be cut afterwards). */
async function act(action: Action, at: (typeof servers)[0], user: User): Promise<SseClient[]> {
  if (action === "kick") await at.ctl.ok(`[kick] ${user.id}`);
  if (action === "kill") await at.ctl.call(`[killuser] ${user.id}`);
  const others: SseClient[] = [];
  const logins = action === "replace" ? 1 : action === "session limit" ? 2 : 0;
  for (let i = 0; i < logins; i++) {
    const other = await SseClient.open(eventsUrl(at.server.publicUrl, user.token));
    await other.events.next("the other login's epoch");
    others.push(other);
  }
  return others;
}

describe.skipIf(Boolean(skip))("final closes over SSE in Chromium: no reconnect", () => {
  for (const transport of ["sse", "auto"] as const) {
    for (const action of ["kick", "kill", "replace", "session limit"] as const) {
      test(`/webtalk.js transport ${transport}, ${action}: onClose ${expected[action].code} final, and no request after it`, async () => {
        const at = servers[action === "session limit" ? 1 : 0]!;
        const user = await newUser(at.ctl);
        const base = `http://127.0.0.1:${at.proxy.port}`;
        const page = await openPage(`/module?base=${encodeURIComponent(base)}&token=${encodeURIComponent(user.token)}&transport=${transport}`);
        await live(page, at.ctl, user);
        expect(await page.evaluate(() => (globalThis as unknown as { connection: { transport: string } }).connection.transport)).toBe("sse");
        // With "auto", the refused WebSocket attempt was a close (1006) before the page went live on SSE.
        const earlier = (await pageVar<unknown[]>(page, "closes")).length;
        const others = await act(action, at, user);
        await page.waitForFunction((n) => (globalThis as unknown as { closes: unknown[] }).closes.length > n, earlier);
        const before = streamRequests(at.proxy, user);
        await Bun.sleep(NO_RECONNECT_MS);
        const closes = (await pageVar<{ code: number; reason: string; final: boolean; sessionLimit?: boolean }[]>(page, "closes")).slice(earlier);
        expect(closes).toEqual([{ ...expected[action], final: true, sessionLimit: action === "session limit" || undefined }]);
        expect(await page.evaluate(() => (globalThis as unknown as { connection: { state: string } }).connection.state)).toBe("closed");
        expect(streamRequests(at.proxy, user)).toBe(before);
        for (const other of others) other.cut();
        await page.context().close();
      }, 30_000);
    }
  }

  for (const action of ["kick", "kill", "replace"] as const) {
    test(`native EventSource with closeEvent=1, ${action}: the close event, then no request`, async () => {
      const at = servers[0]!;
      const user = await newUser(at.ctl);
      const url = `${eventsUrl(`ws://127.0.0.1:${at.proxy.port}/webtalk`, user.token)}&closeEvent=1`;
      const page = await openPage(`/native?url=${encodeURIComponent(url)}`);
      await live(page, at.ctl, user);
      const others = await act(action, at, user);
      await page.waitForFunction(() => (globalThis as unknown as { got: string[] }).got.some((g) => g.startsWith("close ")));
      const before = streamRequests(at.proxy, user);
      await Bun.sleep(NO_RECONNECT_MS);
      const got = await pageVar<string[]>(page, "got");
      expect(got.filter((g) => g.startsWith("close "))).toEqual([`close ${expected[action].code} ${expected[action].reason}`]);
      expect(streamRequests(at.proxy, user)).toBe(before);
      expect(before).toBe(1);
      for (const other of others) other.cut();
      await page.context().close();
    }, 30_000);
  }
});

const nativePage = `<!doctype html><script>
  const url = new URLSearchParams(location.search).get("url");
  window.got = [];
  const source = new EventSource(url);
  source.onmessage = (event) => window.got.push(event.data);
  source.addEventListener("close", (event) => { window.got.push("close " + event.data); source.close(); });
</script>`;

const modulePage = `<!doctype html><script type="module">
  const params = new URLSearchParams(location.search);
  const base = params.get("base");
  const { connect } = await import(base + "/webtalk.js");
  window.got = [];
  window.closes = [];
  window.connection = connect(base + "/webtalk", params.get("token"), {
    minDelay: 50,
    maxDelay: 200,
    transport: params.get("transport"),
    onMessage: (text) => window.got.push(text),
    onClose: (info) => window.closes.push({ code: info.code, reason: info.reason, final: info.final, sessionLimit: info.sessionLimit }),
  });
</script>`;
