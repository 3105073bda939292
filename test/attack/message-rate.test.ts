// Item 5 of issue 13: one browser floods tiny messages with --upstream on; the server must close it
// (1008, --max-message-rate) before the other backends feel it.

import { expect, test } from "bun:test";
import { canaryBackend, ControlClient, report, RssSampler, scale, spawnTarget, within } from "./kit.ts";
import { loggedIn } from "../helpers.ts";

test("a browser flooding one-byte messages is closed with 1008 while a backend's [ping] stays fast", async () => {
  const target = await spawnTarget(["--upstream"]);
  try {
    const ctl = await ControlClient.connect(target.privatePort);
    // A listening backend that reads every event: the flood reaches it as [message] events.
    const listener = await ControlClient.connect(target.privatePort);
    await listener.ok("[listen]");
    const rss = new RssSampler(target.proc.pid);
    const canary = await canaryBackend(target.privatePort, { everyMs: 20 });
    const [flooder] = await loggedIn(target, ctl);
    let closedWith = 0;
    void flooder.closed.then((info) => (closedWith = info.code));
    const floodMs = scale(3_000, 16_000);
    const started = performance.now();
    let sent = 0;
    while (closedWith === 0 && performance.now() - started < floodMs) {
      for (let i = 0; i < 2_000; i++) flooder.send("x");
      sent += 2_000;
      await Bun.sleep(0);
    }
    const info = await within(flooder.closed, "the flooder to be closed", 10_000).catch(() => ({ code: 0, reason: "still open" }));
    const ping = await canary.stop();
    rss.stop();
    report("message-rate", { sent, closed: `${info.code} ${info.reason}`, ping, rssGrowthMB: rss.growth / 2 ** 20 });
    listener.close();
    ctl.close();
    expect(info.code).toBe(1008);
    expect(ping.unanswered).toBe(0);
    expect(ping.p99).toBeLessThanOrEqual(100);
  } finally {
    await target.stop();
  }
}, 60_000);

test("a browser within --max-message-rate is never closed, and each message reaches the listener", async () => {
  const target = await spawnTarget(["--upstream", "--max-message-rate", "50"]);
  try {
    const ctl = await ControlClient.connect(target.privatePort);
    const listener = await ControlClient.connect(target.privatePort);
    await listener.ok("[listen]");
    const [browser, user] = await loggedIn(target, ctl);
    // A burst of the whole allowance, then 25 more paced at 25 per second.
    for (let i = 0; i < 50; i++) browser.send(`b${i}`);
    for (let i = 0; i < 25; i++) {
      await Bun.sleep(40);
      browser.send(`p${i}`);
    }
    const seen: string[] = [];
    while (seen.length < 75) {
      const event = await listener.replies.next("a [message] event");
      if (event.startsWith("[message]")) seen.push(event.slice(`[message] ${user.id}!`.length));
    }
    expect(seen).toEqual([...Array.from({ length: 50 }, (_, i) => `b${i}`), ...Array.from({ length: 25 }, (_, i) => `p${i}`)]);
    expect(await ctl.ok(`[online] ${user.id}`)).toBe("1");
    browser.close();
    listener.close();
    ctl.close();
  } finally {
    await target.stop();
  }
}, 30_000);
