// Presence and events over real sockets: who is online, channel sizes, kick, stats, and [listen].

import { describe, expect, test } from "bun:test";
import { encodeFrame, encodeFrames } from "../src/protocol/frame.ts";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, loggedIn, newUser, rawWebSocket, startTestServer, within, useServer } from "./helpers.ts";

let server: Webtalk;
let ctl: ControlClient;
useServer((s, c) => ((server = s), (ctl = c)), { upstream: true });

/** A control connection that listens; its replies and events arrive in one inbox, in order. */
async function listener(s: Webtalk = server): Promise<ControlClient> {
  const c = await ControlClient.connect(s.private.port);
  expect(await c.call("[listen]")).toBe("[ok] listening");
  expect(await c.replies.next("the [epoch] event")).toMatch(/^\[epoch\] [\w-]+$/);
  return c;
}

/**
 * Waits for the next event (not a reply) about one of `users`, skipping events about others: a browser
 * an earlier test closed may be reported after this test's listener started.
 */
async function nextEvent(c: ControlClient, ...users: number[]): Promise<string> {
  for (let i = 0; i < 10_000; i++) {
    const frame = await c.replies.next("an event");
    if (frame.startsWith("[ok]") || frame.startsWith("[error]")) continue;
    const about = Number(/^\[\w+\] (\d+)/.exec(frame)?.[1]);
    if (users.length === 0 || users.includes(about)) return frame;
  }
  throw new Error("no event among 10,000 frames");
}

function stats(reply: string): Record<string, number> {
  return Object.fromEntries(reply.slice(5).split(" ").map((kv) => [kv.split("=")[0]!, Number(kv.split("=")[1])]));
}

describe("commands", () => {
  test("ping", async () => {
    expect(await ctl.call("[ping]")).toBe("[ok] pong");
    expect(await ctl.call("[ping] x")).toStartWith("[error]");
  });

  test("online follows the browser", async () => {
    const user = await newUser(ctl);
    expect(await ctl.call(`[online] ${user.id}`)).toBe("[ok] 0");
    const [browser] = await loggedIn(server, ctl, user);
    expect(await ctl.call(`[online] ${user.id}`)).toBe("[ok] 1");
    browser.close();
    await browser.closedWithin();
    expect(await ctl.call("[online] 999999")).toBe("[error] no such user 999999");
    expect(await ctl.call("[online] x")).toStartWith("[error] invalid user ID");
  });

  test("count gives MEMBERS!ONLINE", async () => {
    const channel = await ctl.ok("[newchannel]");
    expect(await ctl.call(`[count] ${channel}`)).toBe("[ok] 0!0");
    const [browser, online] = await loggedIn(server, ctl);
    const offline = await newUser(ctl);
    await ctl.ok(`[join] ${channel}!${online.id}`);
    await ctl.ok(`[join] ${channel}!${offline.id}`);
    expect(await ctl.call(`[count] ${channel}`)).toBe("[ok] 2!1");
    await ctl.ok(`[leave] ${channel}!${online.id}`);
    expect(await ctl.call(`[count] ${channel}`)).toBe("[ok] 1!0");
    expect(await ctl.call("[count] 999999")).toBe("[error] no such channel 999999");
    browser.close();
  });

  test("members pages over a channel of several thousand users and the pages join up exactly", async () => {
    const fresh = await startTestServer();
    const c = await ControlClient.connect(fresh.private.port);
    const channel = await c.ok("[newchannel]");
    const total = 25_000; // about 150 KB of IDs: more than one frame holds
    c.write(encodeFrames(Array.from({ length: total }, () => "[newuser]")));
    const ids = (await c.replies.take(total, "newuser replies")).map((r) => Number(r.slice(5).split("!")[0]));
    // Join in a shuffled order: the pages must still come back ascending.
    const shuffled = [...ids].sort(() => Math.random() - 0.5);
    c.write(encodeFrames(shuffled.map((id) => `[join] ${channel}!${id}`)));
    await c.replies.take(total, "join replies");
    const seen: number[] = [];
    let pages = 0;
    for (let after = 0; pages < 100; pages++) {
      const reply = await c.call(after === 0 ? `[members] ${channel}` : `[members] ${channel}!${after}`);
      expect(reply).toStartWith("[ok] ");
      expect(new TextEncoder().encode(reply).length).toBeLessThanOrEqual(99_999);
      if (reply === "[ok] ") break;
      const page = reply.slice(5).split(",").map(Number);
      seen.push(...page);
      after = page.at(-1)!;
    }
    expect(pages).toBeGreaterThan(1);
    expect(seen).toEqual([...ids].sort((a, b) => a - b));
    expect(await c.call(`[count] ${channel}`)).toBe(`[ok] ${total}!0`);
    expect(await c.call("[members] 999999")).toBe("[error] no such channel 999999");
    expect(await c.call(`[members] ${channel}!x`)).toStartWith("[error] invalid AFTER ID");
    c.close();
    await fresh.stop();
  }, 30_000);

  test("kick closes the browser with 4005 and keeps the user, its channels and held messages", async () => {
    const [browser, user] = await loggedIn(server, ctl);
    const channel = await ctl.ok("[newchannel]");
    await ctl.ok(`[join] ${channel}!${user.id}`);
    expect(await ctl.call(`[kick] ${user.id}`)).toBe("[ok] user kicked");
    expect(await browser.closedWithin()).toEqual({ code: 4005, reason: "kicked" });
    expect(await ctl.call(`[online] ${user.id}`)).toBe("[ok] 0");
    expect(await ctl.call(`[whisper] ${user.id}!kept`)).toBe("[ok] message queued");
    const [again, , earlier] = await loggedIn(server, ctl, user);
    expect(earlier).toEqual(["kept"]);
    await ctl.ok(`[shout] ${channel}!still a member`);
    expect(await again.messages.next()).toBe("still a member");
    expect(await ctl.call("[kick] 999999")).toBe("[error] no such user 999999");
    again.close();
  });

  test("stats reports every key, and the values move", async () => {
    const before = stats(await ctl.call("[stats]"));
    for (const key of ["uptime_s", "users", "online", "channels", "held", "delivered", "dropped", "control_connections", "listeners"]) {
      expect(before[key]).toBeNumber();
    }
    const [browser, user] = await loggedIn(server, ctl);
    await ctl.ok(`[whisper] ${user.id}!one`);
    await browser.messages.next();
    const l = await listener();
    const after = stats(await ctl.call("[stats]"));
    expect(after.users).toBe(before.users! + 1);
    expect(after.online).toBe(before.online! + 1);
    expect(after.delivered).toBeGreaterThanOrEqual(before.delivered! + 2); // the held marker and the whisper
    expect(after.control_connections).toBe(before.control_connections! + 1);
    expect(after.listeners).toBe(before.listeners! + 1);
    l.close();
    browser.close();
  });
});

describe("events", () => {
  test("a listener hears [online] at login and [offline] when the browser closes", async () => {
    const l = await listener();
    const [browser, user] = await loggedIn(server, ctl);
    expect(await nextEvent(l, user.id)).toBe(`[online] ${user.id}`);
    browser.close();
    expect(await nextEvent(l, user.id)).toBe(`[offline] ${user.id}`);
    expect(await ctl.call(`[online] ${user.id}`)).toBe("[ok] 0");
    l.close();
  });

  test("[offline] after a browser vanishes without a close frame", async () => {
    const l = await listener();
    const user = await newUser(ctl);
    const raw = await rawWebSocket(server.public.port, "/webtalk");
    expect(raw.status).toStartWith("HTTP/1.1 101");
    raw.sendText(user.token);
    expect(await nextEvent(l, user.id)).toBe(`[online] ${user.id}`);
    raw.socket.terminate(); // no close frame, no goodbye: the TCP connection just ends
    expect(await nextEvent(l, user.id)).toBe(`[offline] ${user.id}`);
    l.close();
  });

  test("kill, kick and a replacing login all tell the listener", async () => {
    const l = await listener();
    const [a, userA] = await loggedIn(server, ctl);
    expect(await nextEvent(l, userA.id)).toBe(`[online] ${userA.id}`);
    await ctl.ok(`[kick] ${userA.id}`);
    expect(await nextEvent(l, userA.id)).toBe(`[offline] ${userA.id}`);
    await a.closedWithin();
    const [, userB] = await loggedIn(server, ctl);
    expect(await nextEvent(l, userB.id)).toBe(`[online] ${userB.id}`);
    const newer = await Browser.open(server.publicUrl);
    newer.send(userB.token);
    expect(await nextEvent(l, userB.id)).toBe(`[offline] ${userB.id}`);
    expect(await nextEvent(l, userB.id)).toBe(`[online] ${userB.id}`);
    await ctl.ok(`[killuser] ${userB.id}`);
    expect(await nextEvent(l, userB.id)).toBe(`[offline] ${userB.id}`);
    l.close();
  });

  test("with --upstream, a listener hears [message] ID!TEXT for each text a logged-in browser sends", async () => {
    const l = await listener();
    const [browser, user] = await loggedIn(server, ctl);
    expect(await nextEvent(l, user.id)).toBe(`[online] ${user.id}`);
    browser.send("hello from the page!");
    browser.send("ünïcødé\nline");
    expect(await nextEvent(l, user.id)).toBe(`[message] ${user.id}!hello from the page!`);
    expect(await nextEvent(l, user.id)).toBe(`[message] ${user.id}!ünïcødé\nline`);
    browser.close();
    l.close();
  });

  test("without --upstream, browser text is ignored", async () => {
    const quiet = await startTestServer();
    const c = await ControlClient.connect(quiet.private.port);
    const l = await listener(quiet);
    const [browser, user] = await loggedIn(quiet, c);
    expect(await nextEvent(l, user.id)).toBe(`[online] ${user.id}`);
    browser.send("nobody hears this");
    browser.close();
    expect(await nextEvent(l, user.id)).toBe(`[offline] ${user.id}`);
    l.close();
    c.close();
    await quiet.stop();
  });

  test("a browser message over --max-message closes it with 1009", async () => {
    const small = await startTestServer({ upstream: true, maxMessage: 1000 });
    const c = await ControlClient.connect(small.private.port);
    const [browser, user] = await loggedIn(small, c);
    browser.send("x".repeat(1001));
    expect((await browser.closedWithin()).code).toBe(1009);
    expect(await c.call(`[online] ${user.id}`)).toMatch(/^\[ok\] [01]$/);
    c.close();
    await small.stop();
  });

  test("two listeners both receive every event, in the order they happened", async () => {
    const l1 = await listener();
    const l2 = await listener();
    const expected: string[] = [];
    const browsers: Browser[] = [];
    for (let i = 0; i < 5; i++) {
      const [browser, user] = await loggedIn(server, ctl);
      browsers.push(browser);
      expected.push(`[online] ${user.id}`);
      browser.send(`m${i}`);
      expected.push(`[message] ${user.id}!m${i}`);
      // Wait for this step's events so the expected order is the order they happened in.
      await within(
        (async () => {
          const events = [await nextEvent(l1, user.id), await nextEvent(l1, user.id)];
          expect(events).toEqual(expected.slice(-2));
        })(),
        "events of one step",
      );
    }
    const fromL2: string[] = [];
    const ids = expected.map((event) => Number(/ (\d+)/.exec(event)![1]));
    for (let i = 0; i < expected.length; i++) fromL2.push(await nextEvent(l2, ...ids));
    expect(fromL2).toEqual(expected);
    for (const b of browsers) b.close();
    l1.close();
    l2.close();
  });

  test("a listener that does not read is cut off; other listeners, users and commands carry on", async () => {
    const s = await startTestServer({ upstream: true, listenerBuffer: 1 << 20, maxMessageRate: 0 });
    const c = await ControlClient.connect(s.private.port);
    const reader = await listener(s);
    const stalled = await stalledListener(s.private.port);
    const [browser, user] = await loggedIn(s, c);
    expect(await nextEvent(reader, user.id)).toBe(`[online] ${user.id}`);
    const text = "y".repeat(4000);
    // Paced in steps the reading listener keeps up with, while the stalled one falls ever further
    // behind: 1 MiB allowed, plus whatever the kernel buffers, is passed well before 40 MB.
    let sent = 0;
    for (let step = 0; step < 200 && !stalled.isClosed(); step++) {
      for (let i = 0; i < 50; i++) browser.send(`${sent + i}:${text}`);
      for (let i = 0; i < 50; i++) expect(await nextEvent(reader, user.id)).toBe(`[message] ${user.id}!${sent + i}:${text}`);
      sent += 50;
    }
    await within(stalled.closed, "the stalled listener to be disconnected");
    expect(await c.call(`[whisper] ${user.id}!still fine`)).toBe("[ok] message sent");
    expect(await browser.messages.next()).toBe("still fine");
    expect(stats(await c.call("[stats]")).listeners).toBe(1);
    browser.send("after the cut");
    expect(await nextEvent(reader, user.id)).toBe(`[message] ${user.id}!after the cut`);
    browser.close();
    reader.close();
    c.close();
    await s.stop();
  }, 60_000);
});

/** A control connection that sends [listen] and then stops reading from its socket. */
async function stalledListener(port: number): Promise<{ closed: Promise<void>; isClosed(): boolean }> {
  const { promise, resolve } = Promise.withResolvers<void>();
  let closed = false;
  const done = () => {
    closed = true;
    resolve();
  };
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: { data: (s) => s.pause(), close: done, error: done },
  });
  socket.write(encodeFrame("[listen]"));
  return { closed: promise, isClosed: () => closed };
}

