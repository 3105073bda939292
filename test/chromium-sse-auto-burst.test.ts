// /webtalk.js with transport "auto" in Chromium behind a relay that refuses (or swallows) WebSocket
// upgrades: on SSE, the relay is cut in the middle of a burst, and the page must end with every
// message once, in order per source, with no gap. And a page away past the replay window: onGap
// names the source, then what the window holds arrives, in order.

import { describe, expect, test } from "bun:test";
import type { Page } from "playwright-core";
import { encodeFrames } from "../src/protocol/frame.ts";
import type { Webtalk } from "../src/server.ts";
import { chromiumMissing, useChromiumSite } from "./chromium.ts";
import { ControlClient, newUser, startTestServer } from "./helpers.ts";
import { UpgradeRefusingProxy } from "./http-proxy.ts";

const skip = chromiumMissing();
const site = useChromiumSite(skip, () => modulePage);

async function openPage(base: string, token: string, extra = ""): Promise<Page> {
  const page = await site.open(`base=${encodeURIComponent(base)}&token=${encodeURIComponent(token)}${extra}`);
  await page.waitForFunction(() => (globalThis as unknown as { connection?: { state: string; transport: string } }).connection?.state === "open");
  return page;
}

const read = <T,>(page: Page, name: string) => page.evaluate((n) => (globalThis as unknown as Record<string, T>)[n]!, name);

describe.skipIf(Boolean(skip))("/webtalk.js auto on SSE: cut mid-burst, gap past the window", () => {
  for (const upgrades of ["refuse", "swallow"] as const) {
    test(`upgrades ${upgrades === "refuse" ? "refused" : "swallowed"}: a cut in the middle of 3,000 whispers and 3,000 shouts loses and doubles nothing`, async () => {
      // A window that holds the whole burst: the cut must cost nothing.
      const server: Webtalk = await startTestServer({ replayCount: 10_000 });
      const ctl = await ControlClient.connect(server.private.port);
      const proxy = new UpgradeRefusingProxy(server.public.port, upgrades);
      try {
        const user = await newUser(ctl);
        const channel = await ctl.ok("[newchannel]");
        await ctl.ok(`[join] ${channel}!${user.id}`);
        const page = await openPage(`http://127.0.0.1:${proxy.port}`, user.token, "&fallbackAfter=300");
        await page.waitForFunction(() => (globalThis as unknown as { connection: { transport: string; state: string } }).connection.transport === "sse");
        await page.waitForFunction(() => (globalThis as unknown as { connection: { state: string } }).connection.state === "open");
        const total = 3_000;
        const commands: string[] = [];
        for (let i = 1; i <= total; i++) commands.push(`[whisper] ${user.id}!w${i}`, `[shout] ${channel}!s${i}`);
        // The relay cuts the stream after ≈ 40 KB of the burst (each event is ≈ 60 bytes or more), wherever a chunk ends.
        proxy.cutAfterBytes = 40_000;
        ctl.write(encodeFrames(commands));
        await ctl.replies.take(commands.length, "the replies", 30_000);
        expect(proxy.cutAfterBytes).toBeUndefined();
        await page.waitForFunction(
          (n) => {
            const got = (globalThis as unknown as { got: string[] }).got;
            return got.includes(`u:${n} w${n}`) && got.some((g) => g.endsWith(` s${n}`));
          },
          total,
          { timeout: 30_000 },
        );
        await ctl.ok(`[whisper] ${user.id}!last`);
        await page.waitForFunction(() => (globalThis as unknown as { got: string[] }).got.includes(`u:${3_001} last`));
        const got = await read<string[]>(page, "got");
        const whispers = got.filter((g) => g.startsWith("u:"));
        const shouts = got.filter((g) => g.startsWith(`${channel}:`));
        expect(whispers).toEqual([...Array.from({ length: total }, (_, i) => `u:${i + 1} w${i + 1}`), `u:${total + 1} last`]);
        expect(shouts).toEqual(Array.from({ length: total }, (_, i) => `${channel}:${i + 1} s${i + 1}`));
        expect(await read<string[]>(page, "gaps")).toEqual([]);
        // The cut was a reconnect (a non-final close), on SSE.
        expect((await read<number[]>(page, "closes")).filter((c) => c !== 1006 && c !== 1000)).toEqual([]);
        expect(proxy.requests.filter((r) => r.includes("/events?")).length).toBeGreaterThanOrEqual(2);
        await page.context().close();
      } finally {
        proxy.stop();
        ctl.close();
        await server.stop();
      }
    }, 90_000);
  }

  test("away past the replay window: onGap names the channel, then the window's messages in order, then live", async () => {
    const server: Webtalk = await startTestServer({ replayCount: 3 });
    const ctl = await ControlClient.connect(server.private.port);
    const proxy = new UpgradeRefusingProxy(server.public.port);
    try {
      const user = await newUser(ctl);
      const channel = await ctl.ok("[newchannel]");
      await ctl.ok(`[join] ${channel}!${user.id}`);
      const page = await openPage(`http://127.0.0.1:${proxy.port}`, user.token, "&transport=sse");
      await ctl.ok(`[shout] ${channel}!s1`);
      await page.waitForFunction(() => (globalThis as unknown as { got: string[] }).got.length === 1);
      // Away: the relay refuses the page's reconnects while 10 shouts go out.
      proxy.down = true;
      proxy.cut();
      await page.waitForFunction(() => (globalThis as unknown as { closes: number[] }).closes.length > 0);
      for (let i = 2; i <= 11; i++) await ctl.ok(`[shout] ${channel}!s${i}`);
      proxy.down = false;
      await page.waitForFunction(() => (globalThis as unknown as { connection: { state: string } }).connection.state === "open", undefined, {
        timeout: 10_000,
      });
      await ctl.ok(`[shout] ${channel}!s12`);
      await page.waitForFunction(() => (globalThis as unknown as { got: string[] }).got.some((g) => g.endsWith(" s12")));
      expect(await read<string[]>(page, "gaps")).toEqual([channel]);
      expect(await read<string[]>(page, "got")).toEqual([`${channel}:1 s1`, `${channel}:9 s9`, `${channel}:10 s10`, `${channel}:11 s11`, `${channel}:12 s12`]);
      await page.context().close();
    } finally {
      proxy.stop();
      ctl.close();
      await server.stop();
    }
  }, 60_000);
});

const modulePage = `<!doctype html><script type="module">
  const params = new URLSearchParams(location.search);
  const base = params.get("base");
  const { connect } = await import(base + "/webtalk.js");
  window.got = [];
  window.gaps = [];
  window.closes = [];
  window.connection = connect(base + "/webtalk", params.get("token"), {
    minDelay: 50,
    maxDelay: 300,
    fallbackAfter: Number(params.get("fallbackAfter") ?? 3000),
    transport: params.get("transport") ?? undefined,
    onMessage: (text, at) => window.got.push(at.source + ":" + at.offset + " " + text),
    onGap: (source) => window.gaps.push(source),
    onClose: (info) => window.closes.push(info.code),
  });
</script>`;
