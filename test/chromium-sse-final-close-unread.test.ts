// A final close (kicked, session limit) reaching an SSE page that has a backlog unread: the page must
// still hear the close as final and not come back. The page is /webtalk.js in Chromium behind a TCP
// relay that stops carrying bytes down (hold) while a burst is shouted, then carries them again.
// Counted at the server: the user's [online]/[offline] events and [online] ID.

import { describe, expect, test } from "bun:test";
import type { Page } from "playwright-core";
import type { Webtalk } from "../src/server.ts";
import { chromiumMissing, useChromiumSite } from "./chromium.ts";
import { ControlClient, newUser, startTestServer, type User } from "./helpers.ts";
import { TcpProxy } from "./proxy.ts";
import { eventsUrl, SseClient } from "./sse-client.ts";

const skip = chromiumMissing();
/** Longer than several reconnects of the page (maxDelay 200 ms). */
const NO_RECONNECT_MS = 3_000;
/** Shouted while the relay holds: more than the loopback socket buffers take, so the server queues some. */
const BURST = 4_000;
const TEXT = "x".repeat(4_000);

const site = useChromiumSite(skip, () => modulePage);

function openPage(base: string, user: User): Promise<Page> {
  return site.open(`base=${encodeURIComponent(base)}&token=${encodeURIComponent(user.token)}`);
}

/** Events about `user` that arrive until none has for `quietMs`. */
async function eventsAbout(events: ControlClient, user: User, quietMs: number): Promise<string[]> {
  return (await events.replies.settled(quietMs)).filter((e) => e.endsWith(` ${user.id}`));
}

describe.skipIf(Boolean(skip))("a final close behind a backlog", () => {
  for (const action of ["kick", "session limit", "replace"] as const) {
    test(`${action}: the page with a backlog unread hears it as final and does not come back`, async () => {
      // --backpressure high enough that the held stream is not closed as a slow consumer first.
      const server: Webtalk = await startTestServer({ backpressure: 256 << 20, sessions: action === "session limit" ? 2 : 1 });
      const ctl = await ControlClient.connect(server.private.port);
      const events = await ControlClient.connect(server.private.port);
      const proxy = new TcpProxy(server.public.port);
      proxy.up();
      const others: SseClient[] = [];
      try {
        await events.ok("[listen]");
        await events.replies.next("[epoch]");
        const user = await newUser(ctl);
        const channel = await ctl.ok("[newchannel]");
        await ctl.ok(`[join] ${channel}!${user.id}`);
        const page = await openPage(`http://127.0.0.1:${proxy.port}`, user);
        await ctl.ok(`[whisper] ${user.id}!live`);
        await page.waitForFunction(() => (globalThis as unknown as { got?: string[] }).got?.includes("live"));
        expect(await eventsAbout(events, user, 200)).toEqual([`[online] ${user.id}`]);

        proxy.hold();
        const shouts = Array.from({ length: BURST }, (_, i) => `[shout] ${channel}!${i} ${TEXT}`);
        for (const shout of shouts) ctl.write(new TextEncoder().encode(`${String(new TextEncoder().encode(shout).length).padStart(5, "0")}${shout}`));
        await ctl.replies.take(BURST, "the shouts' replies", 60_000);

        if (action === "kick") await ctl.ok(`[kick] ${user.id}`);
        else
          for (let i = 0; i < (action === "replace" ? 1 : 2); i++) {
            const other = await SseClient.open(eventsUrl(server.publicUrl, user.token));
            await other.events.next("the other tab's epoch");
            others.push(other);
          }
        proxy.release();
        await page.waitForFunction(() => (globalThis as unknown as { closes: unknown[] }).closes.length > 0, undefined, { timeout: 30_000 });
        await Bun.sleep(NO_RECONNECT_MS);
        const closes = await page.evaluate(() => (globalThis as unknown as { closes: unknown[] }).closes);
        const about = await eventsAbout(events, user, 200);
        const expected = action === "kick" ? { code: 4005, final: true } : { code: 4002, final: true };
        // The page heard the final close, and only that; the server saw it leave once and not come back
        // (after a replace or the session limit, the user stays online through the newer tabs; a
        // replacing login under --sessions 1 is [offline] then [online], control-protocol.md).
        const leftOnce = { kick: [`[offline] ${user.id}`], replace: [`[offline] ${user.id}`, `[online] ${user.id}`], "session limit": [] };
        expect({ closes, about, online: await ctl.ok(`[online] ${user.id}`) }).toEqual({
          closes: [expected],
          about: leftOnce[action],
          online: action === "kick" ? "0" : "1",
        });
        // The two newer tabs are the ones left: neither was replaced by the old page coming back.
        for (const other of others) expect((await other.events.settled(100)).filter((e) => e.type === "close")).toEqual([]);
        await page.context().close();
      } finally {
        for (const other of others) other.cut();
        proxy.stop();
        ctl.close();
        events.close();
        await server.stop();
      }
    }, 90_000);
  }
});

const modulePage = `<!doctype html><script type="module">
  const params = new URLSearchParams(location.search);
  const base = params.get("base");
  const { connect } = await import(base + "/webtalk.js");
  window.got = [];
  window.closes = [];
  window.connection = connect(base + "/webtalk", params.get("token"), {
    minDelay: 50,
    maxDelay: 200,
    transport: "sse",
    onMessage: (text) => window.got.length < 10 && window.got.push(text),
    onClose: (info) => window.closes.push({ code: info.code, final: info.final }),
  });
</script>`;
