// Several browsers per user (--sessions, issue 17), over real sockets, in memory and with a data file
// (and in the cluster mode when WEBTALK_TEST_REDIS is set, as every suite started by startTestServer).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Config } from "../src/config/schema.ts";
import type { Webtalk } from "../src/server.ts";
import type { CloseInfo } from "../src/client/browser/webtalk.js";
import { Browser, ControlClient, Inbox, loggedIn, newUser, startTestServer, type User } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-sessions-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `[stats]` as numbers by key. */
async function stats(ctl: ControlClient): Promise<Record<string, number>> {
  const reply = await ctl.ok("[stats]");
  return Object.fromEntries(reply.split(" ").map((kv) => [kv.split("=")[0]!, Number(kv.split("=")[1])]));
}

/**
 * Opens one more tab of `user` and returns once the server counts `sessions` browsers: a tab after the
 * first gets no held marker (the first took the user's held messages), so the gauge tells.
 */
async function tab(server: Webtalk, ctl: ControlClient, user: User, sessions: number, protocol?: string): Promise<Browser> {
  const browser = await Browser.open(server.publicUrl, protocol);
  browser.send(user.token);
  for (let i = 0; i < 5_000; i++) {
    if ((await stats(ctl)).sessions === sessions) return browser;
  }
  throw new Error(`the server never counted ${sessions} sessions`);
}

/** A listening control connection whose events arrive in `replies`. */
async function listener(server: Webtalk): Promise<ControlClient> {
  const c = await ControlClient.connect(server.private.port);
  expect(await c.call("[listen]")).toBe("[ok] listening");
  await c.replies.next("the epoch event");
  return c;
}

/** The next `[online]`/`[offline]` event about `user`, skipping others. */
async function presenceEvent(c: ControlClient, user: number): Promise<string> {
  for (;;) {
    const frame = await c.replies.next(`an event about ${user}`);
    if (frame === `[online] ${user}` || frame === `[offline] ${user}`) return frame;
  }
}

const modes: [string, () => Partial<Config>][] = [
  ["in memory", () => ({})],
  ["with --data", () => ({ data: join(dir, `${Math.random()}.db`) })],
];

describe.each(modes)("--sessions 3 %s", (_mode, extra) => {
  let server: Webtalk;
  let reject: Webtalk;
  let ctl: ControlClient;
  let rctl: ControlClient;
  beforeAll(async () => {
    server = await startTestServer({ sessions: 3, ...extra() });
    reject = await startTestServer({ sessions: 3, duplicate: "reject", ...extra() });
    ctl = await ControlClient.connect(server.private.port);
    rctl = await ControlClient.connect(reject.private.port);
  });
  afterAll(async () => {
    ctl.close();
    rctl.close();
    await server.stop();
    await reject.stop();
  });

  /** Three tabs of a new user, the first having taken its held messages. */
  async function threeTabs(s = server, c = ctl, protocol?: string): Promise<[Browser[], User]> {
    const base = (await stats(c)).sessions!;
    const [first, user] = await loggedIn(s, c);
    const second = await tab(s, c, user, base + 2, protocol);
    const third = await tab(s, c, user, base + 3, protocol);
    return [[first, second, third], user];
  }

  test("three tabs of one user each receive every whisper and every shout, once", async () => {
    const channel = await ctl.ok("[newchannel]");
    const [tabs, user] = await threeTabs();
    await ctl.ok(`[join] ${channel}!${user.id}`);
    expect(await ctl.call(`[whisper] ${user.id}!w1`)).toBe("[ok] message sent");
    expect(await ctl.call(`[shout] ${channel}!s1`)).toBe("[ok] message sent");
    await ctl.ok(`[whisper] ${user.id}!w2`);
    for (const browser of tabs) expect(await browser.messages.take(3, "the three messages")).toEqual(["w1", "s1", "w2"]);
    await ctl.ok(`[leave] ${channel}!${user.id}`);
    await ctl.ok(`[shout] ${channel}!after-leave`);
    await ctl.ok(`[whisper] ${user.id}!end`);
    for (const browser of tabs) expect(await browser.messages.next("the end marker")).toBe("end");
    for (const browser of tabs) browser.close();
  });

  test("presence counts the user once: [online], [count], [stats], and one [online]/[offline] pair", async () => {
    const events = await listener(server);
    const channel = await ctl.ok("[newchannel]");
    const before = await stats(ctl);
    const [tabs, user] = await threeTabs();
    await ctl.ok(`[join] ${channel}!${user.id}`);
    expect(await presenceEvent(events, user.id)).toBe(`[online] ${user.id}`);
    expect(await ctl.call(`[online] ${user.id}`)).toBe("[ok] 1");
    expect(await ctl.call(`[count] ${channel}`)).toBe("[ok] 1!1");
    const during = await stats(ctl);
    expect(during.online! - before.online!).toBe(1);
    expect(during.sessions! - before.sessions!).toBe(3);
    tabs[0]!.close();
    await tabs[0]!.closedWithin();
    tabs[2]!.close();
    await tabs[2]!.closedWithin();
    // Still online with one tab: no [offline] yet, and the last tab still receives.
    await ctl.ok(`[whisper] ${user.id}!still`);
    expect(await tabs[1]!.messages.next()).toBe("still");
    expect(await ctl.call(`[online] ${user.id}`)).toBe("[ok] 1");
    tabs[1]!.close();
    await tabs[1]!.closedWithin();
    // The next event about the user is its one [offline]: no [online] or [offline] for tabs 2 and 3.
    expect(await presenceEvent(events, user.id)).toBe(`[offline] ${user.id}`);
    expect(await ctl.call(`[online] ${user.id}`)).toBe("[ok] 0");
    expect(await ctl.call(`[count] ${channel}`)).toBe("[ok] 1!0");
    events.close();
  });

  test("a fourth tab under --duplicate replace closes the oldest with 4002 naming the session limit", async () => {
    const [tabs, user] = await threeTabs();
    const base = (await stats(ctl)).sessions!;
    const fourth = await Browser.open(server.publicUrl);
    fourth.send(user.token);
    expect(await tabs[0]!.closedWithin("the oldest tab to be replaced")).toEqual({ code: 4002, reason: "session limit: replaced by a newer login" });
    expect((await stats(ctl)).sessions).toBe(base);
    await ctl.ok(`[whisper] ${user.id}!to-the-three`);
    for (const browser of [tabs[1]!, tabs[2]!, fourth]) expect(await browser.messages.next()).toBe("to-the-three");
    for (const browser of [tabs[1]!, tabs[2]!, fourth]) browser.close();
  });

  test("a fourth tab under --duplicate reject is closed with 4002 and the three stay", async () => {
    const [tabs, user] = await threeTabs(reject, rctl);
    const fourth = await Browser.open(reject.publicUrl);
    fourth.send(user.token);
    expect(await fourth.closedWithin("the fourth tab to be refused")).toEqual({ code: 4002, reason: "session limit: too many sessions" });
    await rctl.ok(`[whisper] ${user.id}!to-the-three`);
    for (const browser of tabs) expect(await browser.messages.next()).toBe("to-the-three");
    for (const browser of tabs) browser.close();
  });

  test("[kick] closes every tab of the user with 4005, [killuser] with 4004", async () => {
    const [kicked, a] = await threeTabs();
    expect(await ctl.call(`[kick] ${a.id}`)).toBe("[ok] user kicked");
    for (const browser of kicked) expect((await browser.closedWithin()).code).toBe(4005);
    expect(await ctl.call(`[online] ${a.id}`)).toBe("[ok] 0");
    const [killed, b] = await threeTabs();
    expect(await ctl.call(`[killuser] ${b.id}`)).toBe("[ok] user killed");
    for (const browser of killed) expect((await browser.closedWithin()).code).toBe(4004);
  });

  test("held whispers go to the first tab that logs in, and only to it", async () => {
    const user = await newUser(ctl);
    await ctl.ok(`[whisper] ${user.id}!held-1`);
    await ctl.ok(`[whisper] ${user.id}!held-2`);
    const [first, , earlier] = await loggedIn(server, ctl, user);
    expect(earlier).toEqual(["held-1", "held-2"]);
    const second = await tab(server, ctl, user, (await stats(ctl)).sessions! + 1);
    await ctl.ok(`[whisper] ${user.id}!live`);
    expect(await second.messages.next()).toBe("live");
    expect(await first.messages.next()).toBe("live");
    first.close();
    second.close();
  });

  test("v2 resume is per tab: each resumes from its own positions", async () => {
    const user = await newUser(ctl);
    const base = (await stats(ctl)).sessions!;
    const a = await tab(server, ctl, user, base + 1, "webtalk.v2");
    const b = await tab(server, ctl, user, base + 2, "webtalk.v2");
    const epoch = (await a.messages.next("a's epoch")).slice("#epoch ".length);
    expect(await b.messages.next("b's epoch")).toBe(`#epoch ${epoch}`);
    for (const n of [1, 2, 3]) await ctl.ok(`[whisper] ${user.id}!m${n}`);
    expect(await a.messages.take(3)).toEqual(["u:1!m1", "u:2!m2", "u:3!m3"]);
    expect(await b.messages.take(3)).toEqual(["u:1!m1", "u:2!m2", "u:3!m3"]);
    // Tab a goes having seen up to 1 (it says so at its next login); b stays and sees everything live.
    a.close();
    await a.closedWithin();
    await ctl.ok(`[whisper] ${user.id}!m4`);
    expect(await b.messages.next()).toBe("u:4!m4");
    const again = await Browser.open(server.publicUrl, "webtalk.v2");
    again.send(`${user.token}!${epoch}!u:1`);
    expect(await again.messages.next()).toBe(`#epoch ${epoch}`);
    expect(await again.messages.take(3, "the replay from 1")).toEqual(["u:2!m2", "u:3!m3", "u:4!m4"]);
    await ctl.ok(`[whisper] ${user.id}!m5`);
    expect(await again.messages.next()).toBe("u:5!m5");
    expect(await b.messages.next()).toBe("u:5!m5");
    again.close();
    b.close();
  });
});

describe("--sessions 1 (the default)", () => {
  test("a second login replaces the first with the original 4002 reason, and [stats] has no sessions=", async () => {
    const server = await startTestServer();
    const ctl = await ControlClient.connect(server.private.port);
    try {
      const [first, user] = await loggedIn(server, ctl);
      const second = await Browser.open(server.publicUrl);
      second.send(user.token);
      expect(await first.closedWithin()).toEqual({ code: 4002, reason: "replaced by another login" });
      expect(await ctl.ok("[stats]")).not.toContain("sessions=");
      second.close();
    } finally {
      ctl.close();
      await server.stop();
    }
  });
});

describe("/webtalk.js", () => {
  test("a tab replaced past the session limit is told so (sessionLimit) and does not reconnect", async () => {
    const { connect } = await import("../src/client/browser/webtalk.js");
    const server = await startTestServer({ sessions: 2 });
    const ctl = await ControlClient.connect(server.private.port);
    const closes: Inbox<CloseInfo> = new Inbox();
    try {
      const user = await newUser(ctl);
      await ctl.ok(`[whisper] ${user.id}!first`);
      const page = connect(server.publicUrl, user.token, { onClose: (info) => closes.push(info), minDelay: 1 });
      // The page must be the oldest tab: the others open once it is logged in (under load they overtook it).
      for (let i = 0; i < 5_000 && (await stats(ctl)).sessions !== 1; i++) await Bun.sleep(1);
      const others = [await tab(server, ctl, user, 2), await tab(server, ctl, user, 2)];
      expect(await closes.next("the page's close")).toEqual({
        code: 4002,
        reason: "session limit: replaced by a newer login",
        final: true,
        reconnectIn: undefined,
        sessionLimit: true,
      });
      expect(page.state).toBe("closed");
      for (const browser of others) browser.close();
    } finally {
      ctl.close();
      await server.stop();
    }
  });
});
