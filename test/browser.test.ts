// The public port, end to end: real WebSocket browsers driven by a real control connection.

import { describe, expect, test } from "bun:test";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, expectNothingMore, loggedIn, newUser, startTestServer, useServer } from "./helpers.ts";

let server: Webtalk;
let ctl: ControlClient;
useServer((s, c) => ((server = s), (ctl = c)));

const httpUrl = (path: string) => `http://127.0.0.1:${server.public.port}${path}`;

describe("HTTP", () => {
  test("the WebSocket path without an upgrade answers 426; any other path 404", async () => {
    expect((await fetch(httpUrl("/webtalk"))).status).toBe(426);
    expect((await fetch(httpUrl("/"))).status).toBe(404);
    expect((await fetch(httpUrl("/webtalk/x"))).status).toBe(404);
  });

  test("the path is configurable", async () => {
    const other = await startTestServer({ path: "/push" });
    const c = await ControlClient.connect(other.private.port);
    expect(other.publicUrl).toEndWith("/push");
    const [browser] = await loggedIn(other, c);
    expect((await fetch(`http://127.0.0.1:${other.public.port}/webtalk`)).status).toBe(404);
    browser.close();
    c.close();
    await other.stop();
  });
});

describe("login", () => {
  test("a correct ID!SALT logs in silently and receives whispers as plain text", async () => {
    const user = await newUser(ctl);
    const browser = await Browser.open(server.publicUrl);
    browser.send(user.token);
    // Nothing is sent back on login; the first thing received is the whisper.
    let reply = "[ok] message queued";
    for (let i = 0; i < 200 && reply === "[ok] message queued"; i++) {
      reply = await ctl.call(`[whisper] ${user.id}!probe`);
      if (reply === "[ok] message queued") await Bun.sleep(5);
    }
    expect(reply).toBe("[ok] message sent");
    // Probes held before the login took effect arrive first, then the one that was sent live.
    const messages: string[] = [];
    while (messages.at(-1) !== "probe" || messages.length === 0) messages.push(await browser.messages.next());
    expect(messages.every((m) => m === "probe")).toBe(true);
    browser.close();
  });

  test.each([
    ["a malformed token", "nonsense"],
    ["an unknown user", "999999!abc"],
    ["an empty message", ""],
    ["a token longer than 256 bytes", `1!${"x".repeat(300)}`],
  ])("%s closes with 4001", async (_, token) => {
    const browser = await Browser.open(server.publicUrl);
    browser.send(token);
    expect(await browser.closedWithin()).toEqual({ code: 4001, reason: "login failed" });
  });

  test("a wrong salt closes with 4001 and never disturbs the connected browser", async () => {
    const [connected, user] = await loggedIn(server, ctl);
    const intruder = await Browser.open(server.publicUrl);
    // One character off (the salt is random: its last character may itself be an "x").
    const wrong = user.salt.slice(0, -1) + (user.salt.endsWith("x") ? "y" : "x");
    intruder.send(`${user.id}!${wrong}`);
    expect((await intruder.closedWithin()).code).toBe(4001);
    expect(await ctl.call(`[whisper] ${user.id}!still here`)).toBe("[ok] message sent");
    expect(await connected.messages.next()).toBe("still here");
    connected.close();
  });

  test("a binary first message closes with 4001", async () => {
    const user = await newUser(ctl);
    const browser = await Browser.open(server.publicUrl);
    browser.send(new TextEncoder().encode(user.token));
    expect((await browser.closedWithin()).code).toBe(4001);
  });

  test("no login within the timeout closes with 4003", async () => {
    const quick = await startTestServer({ loginTimeout: 0.2 });
    const browser = await Browser.open(quick.publicUrl);
    expect(await browser.closedWithin()).toEqual({ code: 4003, reason: "login timeout" });
    await quick.stop();
  });

  test("by default a newer login replaces the connected browser with 4002", async () => {
    const [older, user] = await loggedIn(server, ctl);
    const newer = await Browser.open(server.publicUrl);
    newer.send(user.token);
    expect(await older.closedWithin()).toEqual({ code: 4002, reason: "replaced by another login" });
    expect(await ctl.call(`[whisper] ${user.id}!to the newer`)).toBe("[ok] message sent");
    expect(await newer.messages.next()).toBe("to the newer");
    newer.close();
  });

  test("with --duplicate reject the newer login is closed with 4002 and the older keeps receiving", async () => {
    const strict = await startTestServer({ duplicate: "reject" });
    const c = await ControlClient.connect(strict.private.port);
    const [older, user] = await loggedIn(strict, c);
    const newer = await Browser.open(strict.publicUrl);
    newer.send(user.token);
    expect((await newer.closedWithin()).code).toBe(4002);
    expect(await c.call(`[whisper] ${user.id}!to the older`)).toBe("[ok] message sent");
    expect(await older.messages.next()).toBe("to the older");
    older.close();
    c.close();
    await strict.stop();
  });

  test("a user whose browser disconnected logs in again with the same ID!SALT", async () => {
    const [first, user] = await loggedIn(server, ctl);
    first.close();
    await first.closedWithin();
    let reply = "";
    for (let i = 0; i < 200 && reply !== "[ok] message queued"; i++) {
      reply = await ctl.call(`[whisper] ${user.id}!while away`);
      if (reply !== "[ok] message queued") await Bun.sleep(5);
    }
    expect(reply).toBe("[ok] message queued");
    const [second, , earlier] = await loggedIn(server, ctl, user);
    expect(earlier).toEqual(["while away"]);
    expect(await ctl.call(`[whisper] ${user.id}!back`)).toBe("[ok] message sent");
    expect(await second.messages.next()).toBe("back");
    second.close();
  });

  test("what a browser sends after login is ignored", async () => {
    const [browser, user] = await loggedIn(server, ctl);
    browser.send("[killuser] 1");
    browser.send("hello?");
    await expectNothingMore(ctl, browser, user.id);
    browser.close();
  });

  test("killuser closes the browser with 4004 and the credentials stop working", async () => {
    const [browser, user] = await loggedIn(server, ctl);
    expect(await ctl.call(`[killuser] ${user.id}`)).toBe("[ok] user killed");
    expect(await browser.closedWithin()).toEqual({ code: 4004, reason: "user killed" });
    const again = await Browser.open(server.publicUrl);
    again.send(user.token);
    expect((await again.closedWithin()).code).toBe(4001);
  });
});

describe("held messages", () => {
  test("whispers to an offline user are held in order and delivered at login before anything newer", async () => {
    const user = await newUser(ctl);
    for (let i = 1; i <= 5; i++) expect(await ctl.call(`[whisper] ${user.id}!held ${i}`)).toBe("[ok] message queued");
    const [browser, , earlier] = await loggedIn(server, ctl, user);
    expect(earlier).toEqual(["held 1", "held 2", "held 3", "held 4", "held 5"]);
    expect(await ctl.call(`[whisper] ${user.id}!live`)).toBe("[ok] message sent");
    expect(await browser.messages.next()).toBe("live");
    browser.close();
  });

  test("held messages arrive before the marker, oldest first", async () => {
    const user = await newUser(ctl);
    for (let i = 1; i <= 3; i++) await ctl.ok(`[whisper] ${user.id}!h${i}`);
    const browser = await Browser.open(server.publicUrl);
    browser.send(user.token);
    expect(await browser.messages.take(3)).toEqual(["h1", "h2", "h3"]);
    browser.close();
  });

  test("past --queue the oldest are dropped", async () => {
    const small = await startTestServer({ queue: 3 });
    const c = await ControlClient.connect(small.private.port);
    const user = await newUser(c);
    for (let i = 1; i <= 6; i++) await c.ok(`[whisper] ${user.id}!m${i}`);
    const browser = await Browser.open(small.publicUrl);
    browser.send(user.token);
    expect(await browser.messages.take(3)).toEqual(["m4", "m5", "m6"]);
    await expectNothingMore(c, browser, user.id);
    browser.close();
    c.close();
    await small.stop();
  });

  test("killuser drops held messages; shouts are never held", async () => {
    const user = await newUser(ctl);
    await ctl.ok(`[whisper] ${user.id}!private`);
    await ctl.ok(`[shout] 1!public while away`);
    const [browser, , earlier] = await loggedIn(server, ctl, user);
    expect(earlier).toEqual(["private"]);
    await expectNothingMore(ctl, browser, user.id);
    browser.close();
    await browser.closedWithin();
    await ctl.ok(`[whisper] ${user.id}!held then dropped`);
    await ctl.ok(`[killuser] ${user.id}`);
    expect(await ctl.call(`[whisper] ${user.id}!x`)).toStartWith("[error] no such user");
  });
});

describe("channels", () => {
  test("every new user is in channel 1 and receives its shouts", async () => {
    const [a, userA] = await loggedIn(server, ctl);
    const [b, userB] = await loggedIn(server, ctl);
    expect(await ctl.call("[shout] 1!to all")).toBe("[ok] message sent");
    expect(await a.messages.next()).toBe("to all");
    expect(await b.messages.next()).toBe("to all");
    await ctl.ok(`[killuser] ${userA.id}`);
    await ctl.ok(`[killuser] ${userB.id}`);
  });

  test("a shout reaches members only; join twice still delivers once; leave stops it", async () => {
    const [member, m] = await loggedIn(server, ctl);
    const [outsider, o] = await loggedIn(server, ctl);
    const channel = await ctl.ok("[newchannel]");
    await ctl.ok(`[join] ${channel}!${m.id}`);
    await ctl.ok(`[join] ${channel}!${m.id}`);
    await ctl.ok(`[shout] ${channel}!news`);
    expect(await member.messages.next()).toBe("news");
    await expectNothingMore(ctl, member, m.id);
    await expectNothingMore(ctl, outsider, o.id);
    await ctl.ok(`[leave] ${channel}!${m.id}`);
    await ctl.ok(`[shout] ${channel}!after leaving`);
    await expectNothingMore(ctl, member, m.id);
    member.close();
    outsider.close();
  });

  test("join works for a user not connected yet: applied at login", async () => {
    const user = await newUser(ctl);
    const channel = await ctl.ok("[newchannel]");
    await ctl.ok(`[join] ${channel}!${user.id}`);
    const [browser] = await loggedIn(server, ctl, user);
    await ctl.ok(`[shout] ${channel}!welcome`);
    expect(await browser.messages.next()).toBe("welcome");
    browser.close();
  });

  test("killchannel unsubscribes its members", async () => {
    const [browser, user] = await loggedIn(server, ctl);
    const channel = await ctl.ok("[newchannel]");
    await ctl.ok(`[join] ${channel}!${user.id}`);
    await ctl.ok(`[killchannel] ${channel}`);
    expect(await ctl.call(`[shout] ${channel}!ghost`)).toStartWith("[error] no such channel");
    await expectNothingMore(ctl, browser, user.id);
    browser.close();
  });

  test("killing channel 1 is allowed; later users join nothing", async () => {
    const fresh = await startTestServer();
    const c = await ControlClient.connect(fresh.private.port);
    const [browser, user] = await loggedIn(fresh, c);
    expect(await c.call("[killchannel] 1")).toBe("[ok] channel killed");
    expect(await c.call("[shout] 1!x")).toBe("[error] no such channel 1");
    await expectNothingMore(c, browser, user.id);
    const next = await newUser(c);
    expect(await c.call(`[join] 1!${next.id}`)).toBe("[error] no such channel 1");
    browser.close();
    c.close();
    await fresh.stop();
  });

  test("each browser receives messages in the order the commands ran", async () => {
    const [browser, user] = await loggedIn(server, ctl);
    const channel = await ctl.ok("[newchannel]");
    await ctl.ok(`[join] ${channel}!${user.id}`);
    const expected: string[] = [];
    const frames: string[] = [];
    for (let i = 0; i < 300; i++) {
      const text = `n${i}`;
      expected.push(text);
      if (i % 3 === 0) frames.push(`[whisper] ${user.id}!${text}`);
      else if (i % 3 === 1) frames.push(`[shout] ${channel}!${text}`);
      else frames.push(`[shout] 1!${text}`);
    }
    // Pipelined in one write: the server runs them back to back.
    const { encodeFrames } = await import("../src/protocol/frame.ts");
    ctl.write(encodeFrames(frames));
    await ctl.replies.take(frames.length);
    const got = await browser.messages.take(expected.length);
    // On a Redis Cluster each source keeps its order, but a whisper and two channels' shouts come from
    // three shards (docs/internals/redis-cluster.md, "Order on Redis Cluster").
    const bySource = (list: string[]) => [0, 1, 2].map((k) => list.filter((text) => Number(text.slice(1)) % 3 === k));
    if (process.env.WEBTALK_TEST_REDIS_CLUSTER) expect(bySource(got)).toEqual(bySource(expected));
    else expect(got).toEqual(expected);
    browser.close();
  });
});
