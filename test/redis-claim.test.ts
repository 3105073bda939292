// Issue 14 item 3: a login that fails after the user was claimed in Redis (here: Redis stalls while
// the user's channels are read, so the read times out) must undo the claim. Otherwise the user stays
// "online" for good: whispers answer "message sent" and are lost, and a later login receives nothing.

import { expect, test } from "bun:test";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, newUser, startTestServer, within } from "./helpers.ts";
import { TcpProxy } from "./proxy.ts";
import { haveRedis, useRedis, uniquePrefix } from "./redis-server.ts";

const redis = useRedis();

/** A node whose Redis link goes through a proxy the test can freeze, with a control connection; all ended after `body`. */
async function throughProxy(body: (proxy: TcpProxy, server: Webtalk, ctl: ControlClient) => Promise<void>): Promise<void> {
  const proxy = new TcpProxy(redis.port);
  proxy.up();
  const server = await startTestServer({ redis: `redis://127.0.0.1:${proxy.port}`, redisPrefix: uniquePrefix("claim"), lease: 1 });
  const ctl = await ControlClient.connect(server.private.port);
  try {
    await body(proxy, server, ctl);
  } finally {
    ctl.close();
    await server.stop();
    proxy.stop();
  }
}

/** Waits (bounded) until `[online] U` answers 0. */
async function offline(ctl: ControlClient, user: number): Promise<void> {
  await within(
    (async () => {
      while ((await ctl.call(`[online] ${user}`)) !== "[ok] 0") await Bun.sleep(20);
    })(),
    `user ${user} to be offline`,
  );
}

test.skipIf(!haveRedis)("a login that times out after the claim leaves the user offline, its whispers held and delivered later", async () => {
  await throughProxy(async (proxy, server, ctl) => {
    const user = await newUser(ctl);
    // The claim goes through; the read of the user's channels that follows it hangs.
    proxy.freezeOn(`uch:${user.id}`);
    const browser = await Browser.open(server.publicUrl);
    browser.send(user.token);
    const closed = await within(browser.closed, "the login to fail", 10_000);
    expect(closed.code).toBe(1013);
    proxy.thaw();

    // Undone at once, or (when the undo itself timed out) with the next lease renewal.
    await offline(ctl, user.id);
    expect(await ctl.call(`[whisper] ${user.id}!kept for later`)).toBe("[ok] message queued");
    const again = await Browser.open(server.publicUrl);
    again.send(user.token);
    expect(await again.messages.next("the held whisper")).toBe("kept for later");
    expect(await ctl.call(`[online] ${user.id}`)).toBe("[ok] 1");
    again.close();
  });
}, 30_000);

test.skipIf(!haveRedis)("a browser gone before its login completed: the user is offline and its held whispers wait for the next login", async () => {
  await throughProxy(async (proxy, server, ctl) => {
    const user = await newUser(ctl);
    expect(await ctl.call(`[whisper] ${user.id}!held before`)).toBe("[ok] message queued");
    proxy.freezeOn(`uch:${user.id}`);
    const browser = await Browser.open(server.publicUrl);
    browser.send(user.token);
    // The login is under way (it has reached the frozen read) when the browser leaves.
    await Bun.sleep(300);
    browser.close();
    await browser.closedWithin();
    proxy.thaw();

    // The login goes on once Redis answers, and finds the browser gone.
    await offline(ctl, user.id);
    expect(await ctl.call(`[whisper] ${user.id}!held after`)).toBe("[ok] message queued");
    const again = await Browser.open(server.publicUrl);
    again.send(user.token);
    expect(await again.messages.take(2, "the held whispers")).toEqual(["held before", "held after"]);
    again.close();
  });
}, 30_000);
