// The browser client (/webtalk.js): how the public port serves it, and its login, reconnection and
// final close codes, run under Bun (which has the browser's WebSocket) against real servers, with a
// real TCP relay in between to lose the network on demand.

import { describe, expect, test } from "bun:test";
import { classicScript } from "../src/client/browser/assets.ts";
import {
  connect,
  FINAL_CODES,
  type CloseInfo,
  type Connection,
  type ConnectOptions,
  type MessageMeta,
} from "../src/client/browser/webtalk.js";
import { encodeFrames } from "../src/protocol/frame.ts";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, Inbox, newUser, startTestServer, type User, useServer } from "./helpers.ts";
import { TcpProxy } from "./proxy.ts";

let server: Webtalk;
let ctl: ControlClient;
useServer((s, c) => ((server = s), (ctl = c)));

const http = (path: string, init?: RequestInit) => fetch(`http://127.0.0.1:${server.public.port}${path}`, init);

describe("served by the public port", () => {
  test("/webtalk.js is JavaScript with validators, CORS and a cache lifetime", async () => {
    const response = await http("/webtalk.js");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(response.headers.get("cache-control")).toBe("public, max-age=300");
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    const body = await response.text();
    expect(body).toBe(await Bun.file(`${import.meta.dir}/../src/client/browser/webtalk.js`).text());
    const etag = response.headers.get("etag")!;
    expect(etag).toMatch(/^"[\w-]{22}"$/);

    const revalidated = await http("/webtalk.js", { headers: { "If-None-Match": etag } });
    expect(revalidated.status).toBe(304);
    expect(await revalidated.text()).toBe("");
    expect((await http("/webtalk.js", { headers: { "If-None-Match": '"other"' } })).status).toBe(200);
  });

  test("HEAD has the headers and no body; other methods are 405", async () => {
    const head = await http("/webtalk.js", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
    const post = await http("/webtalk.js", { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
  });

  test("/webtalk.global.js defines the global webtalk; /webtalk.d.ts has the types", async () => {
    const classic = await (await http("/webtalk.global.js")).text();
    expect(classic).not.toMatch(/^export /m);
    const scope: { webtalk?: { connect: unknown; FINAL_CODES: unknown } } = {};
    new Function("globalThis", classic)(scope);
    expect(typeof scope.webtalk?.connect).toBe("function");
    expect(scope.webtalk?.FINAL_CODES).toEqual([4001, 4002, 4004, 4005]);
    const types = await http("/webtalk.d.ts");
    expect(await types.text()).toContain("export declare function connect");
  });

  test("the classic script is the module without its exports", () => {
    expect(classicScript("export const A = 1;\nexport function f() {}\n")).toBe(
      '(function () {\n"use strict";\nconst A = 1;\nfunction f() {}\n\nglobalThis.webtalk = { A, f };\n})();\n',
    );
  });

  test("unknown paths are still 404", async () => {
    expect((await http("/webtalk.jsx")).status).toBe(404);
  });
});

/** A page's view of one connection: messages, gaps, opens and closes in inboxes; `log` keeps each message with its v2 position. */
function open(url: string, user: User, options: Omit<ConnectOptions, "onMessage" | "onOpen" | "onClose" | "onGap"> = {}) {
  const messages = new Inbox<string>();
  const log: [string, MessageMeta | undefined][] = [];
  const gaps = new Inbox<string>();
  const opens = new Inbox<true>();
  const closes = new Inbox<CloseInfo>();
  const connection: Connection = connect(url, user.token, {
    ...options,
    onMessage: (text, meta) => {
      log.push([text, meta]);
      messages.push(text);
    },
    onGap: (source) => gaps.push(source),
    onOpen: () => opens.push(true),
    onClose: (info) => closes.push(info),
  });
  return { connection, messages, log, gaps, opens, closes };
}

/** Waits until the server has the user online, proven by a whisper reporting "sent". */
async function untilOnline(c: ControlClient, user: User, page: ReturnType<typeof open>): Promise<void> {
  const marker = `online-${Math.random()}`;
  await c.call(`[whisper] ${user.id}!${marker}`);
  while ((await page.messages.next("the online marker")) !== marker) {
    // Earlier messages (held before the login) come first.
  }
}

describe("login and messages", () => {
  test("logs in with ID!SALT, then whispers and shouts reach onMessage", async () => {
    const user = await newUser(ctl);
    await ctl.ok(`[whisper] ${user.id}!held while away`);
    const page = open(server.publicUrl, user);
    await page.opens.next("onOpen");
    expect(await page.messages.next()).toBe("held while away");
    await ctl.ok(`[whisper] ${user.id}!a whisper`);
    await ctl.ok("[shout] 1!a shout");
    expect(await page.messages.take(2)).toEqual(["a whisper", "a shout"]);
    expect(page.connection.state).toBe("open");
    page.connection.close();
    expect(await page.closes.next()).toMatchObject({ code: 1000, final: true });
    expect(page.connection.state).toBe("closed");
  });

  test("http:// URLs are turned into ws:// ones", async () => {
    const user = await newUser(ctl);
    const page = open(server.publicUrl.replace("ws://", "http://"), user);
    await untilOnline(ctl, user, page);
    page.connection.close();
  });
});

describe("webtalk.v2", () => {
  test("is spoken by default: each message comes with its source and offset", async () => {
    const user = await newUser(ctl);
    const channel = Number(await ctl.ok("[newchannel]"));
    await ctl.ok(`[join] ${channel}!${user.id}`);
    const page = open(server.publicUrl, user);
    await untilOnline(ctl, user, page);
    expect(page.connection.protocol).toBe("webtalk.v2");
    await ctl.ok(`[whisper] ${user.id}!a whisper`);
    await ctl.ok(`[shout] ${channel}!a shout`);
    await ctl.ok(`[shout] ${channel}!another`);
    await page.messages.take(3);
    expect(page.log.slice(-3)).toEqual([
      ["a whisper", { source: "u", offset: 2 }],
      ["a shout", { source: String(channel), offset: 1 }],
      ["another", { source: String(channel), offset: 2 }],
    ]);
    // Channel 1 is listed too, though the page heard nothing from it: the login's #at named it.
    expect(page.connection.resume).toEqual({ epoch: expect.any(String), positions: { "1": expect.any(Number), u: 2, [channel]: 2 } });
    page.connection.close();
  });

  test('protocol "v1" keeps the original plain text', async () => {
    const user = await newUser(ctl);
    const page = open(server.publicUrl, user, { protocol: "v1" });
    await untilOnline(ctl, user, page);
    expect(page.connection.protocol).toBe("");
    await ctl.ok(`[whisper] ${user.id}!plain`);
    expect(await page.messages.next()).toBe("plain");
    expect(page.log.at(-1)).toEqual(["plain", undefined]);
    expect(page.connection.resume).toBeUndefined();
    page.connection.close();
  });

  test("after network loss it resumes: what was whispered and shouted meanwhile arrives once, in order", async () => {
    const proxy = new TcpProxy(server.public.port);
    proxy.up();
    const user = await newUser(ctl);
    const channel = Number(await ctl.ok("[newchannel]"));
    await ctl.ok(`[join] ${channel}!${user.id}`);
    const page = open(`ws://127.0.0.1:${proxy.port}/webtalk`, user, { minDelay: 10, maxDelay: 40 });
    try {
      await untilOnline(ctl, user, page);
      await ctl.ok(`[shout] ${channel}!s0`);
      expect(await page.messages.next()).toBe("s0");

      proxy.down();
      proxy.cut();
      await page.closes.next("the drop");
      for (let i = 1; i <= 3; i++) {
        await ctl.ok(`[shout] ${channel}!s${i}`);
        await ctl.ok(`[whisper] ${user.id}!w${i}`);
      }
      proxy.up();
      await page.messages.take(6, "the missed messages");
      const missed = page.log.slice(-6);
      const bySource = (source: string) => missed.filter(([, meta]) => meta?.source === source).map(([text]) => text);
      expect(bySource(String(channel))).toEqual(["s1", "s2", "s3"]);
      expect(bySource("u")).toEqual(["w1", "w2", "w3"]);
      // Nothing twice, nothing lost: the next message is a live one.
      await ctl.ok(`[shout] ${channel}!live`);
      expect(await page.messages.next()).toBe("live");
      expect(page.gaps.size).toBe(0);
    } finally {
      page.connection.close();
      proxy.stop();
    }
  });

  test("cut before it heard anything from a channel, it still resumes the channel: nothing sent meanwhile is lost", async () => {
    const proxy = new TcpProxy(server.public.port);
    proxy.up();
    const user = await newUser(ctl);
    const channel = Number(await ctl.ok("[newchannel]"));
    await ctl.ok(`[join] ${channel}!${user.id}`);
    await ctl.ok(`[shout] ${channel}!before the page`);
    const page = open(`ws://127.0.0.1:${proxy.port}/webtalk`, user, { minDelay: 10, maxDelay: 40 });
    try {
      await untilOnline(ctl, user, page);
      // The held marker comes before the login's #at: wait for the channel's starting point.
      const deadline = Date.now() + 5_000;
      while (page.connection.resume?.positions[String(channel)] === undefined && Date.now() < deadline) await Bun.sleep(5);
      expect(page.connection.resume?.positions[String(channel)]).toBe(1);
      proxy.down();
      proxy.cut();
      await page.closes.next("the drop");
      for (let i = 1; i <= 3; i++) await ctl.ok(`[shout] ${channel}!s${i}`);
      proxy.up();
      expect(await page.messages.take(3, "the missed shouts")).toEqual(["s1", "s2", "s3"]);
      expect(page.log.at(-1)).toEqual(["s3", { source: String(channel), offset: 4 }]);
      await ctl.ok(`[shout] ${channel}!live`);
      expect(await page.messages.next()).toBe("live");
      expect(page.gaps.size).toBe(0);
    } finally {
      page.connection.close();
      proxy.stop();
    }
  });

  test("what the replay window no longer holds is reported to onGap, then it goes on live", async () => {
    const small = await startTestServer({ replayCount: 2 });
    const c = await ControlClient.connect(small.private.port);
    const proxy = new TcpProxy(small.public.port);
    proxy.up();
    const user = await newUser(c);
    const page = open(`ws://127.0.0.1:${proxy.port}/webtalk`, user, { minDelay: 10, maxDelay: 40 });
    try {
      await untilOnline(c, user, page);
      await c.ok("[shout] 1!seen");
      expect(await page.messages.next()).toBe("seen");
      proxy.down();
      proxy.cut();
      await page.closes.next("the drop");
      for (let i = 1; i <= 5; i++) await c.ok(`[shout] 1!missed ${i}`);
      proxy.up();
      expect(await page.gaps.next("the gap")).toBe("1");
      await untilOnline(c, user, page);
      await c.ok("[shout] 1!after the gap");
      expect(await page.messages.next()).toBe("after the gap");
      expect(page.log.at(-1)).toEqual(["after the gap", { source: "1", offset: 7 }]);
    } finally {
      page.connection.close();
      proxy.stop();
      c.close();
      await small.stop();
    }
  });

  test("a resume login over 16 KB leaves the oldest sources out and says so: each one left out is reported to onGap", async () => {
    const user = await newUser(ctl);
    ctl.write(encodeFrames(Array.from({ length: 1_000 }, () => "[newchannel]")));
    const channels = (await ctl.replies.take(1_000, "channels", 30_000)).map((r) => r.slice(5));
    ctl.write(encodeFrames(channels.map((c) => `[join] ${c}!${user.id}`)));
    await ctl.replies.take(1_000, "joins", 30_000);
    const proxy = new TcpProxy(server.public.port);
    proxy.up();
    const page = open(`ws://127.0.0.1:${proxy.port}/webtalk`, user, { minDelay: 10, maxDelay: 40 });
    try {
      await untilOnline(ctl, user, page);
      ctl.write(encodeFrames(channels.map((c, i) => `[shout] ${c}!m${i}`)));
      await ctl.replies.take(1_000, "shouts", 30_000);
      for (let i = 0; i < 1_000; i++) expect(await page.messages.next(`shout ${i}`)).toBe(`m${i}`);
      proxy.down();
      proxy.cut();
      await page.closes.next("the drop");
      // The oldest channel is the first the login leaves out (about 16 KB / 19 bytes per source fit).
      await ctl.ok(`[shout] ${channels[0]}!missed by a source left out`);
      proxy.up();
      expect(await page.gaps.next("a gap for a source left out")).toBe("1");
      expect(await page.gaps.next("a gap for the oldest channel")).toBe(channels[0]!);
      await untilOnline(ctl, user, page);
      expect(page.log.map(([text]) => text)).not.toContain("missed by a source left out");
    } finally {
      page.connection.close();
      proxy.stop();
    }
  }, 60_000);

  test("resume: a new connection (a reloaded page) picks up where a saved point left off", async () => {
    const user = await newUser(ctl);
    const channel = Number(await ctl.ok("[newchannel]"));
    await ctl.ok(`[join] ${channel}!${user.id}`);
    const first = open(server.publicUrl, user);
    await untilOnline(ctl, user, first);
    await ctl.ok(`[shout] ${channel}!before the reload`);
    expect(await first.messages.next()).toBe("before the reload");
    const saved = first.connection.resume!;
    first.connection.close();
    await first.closes.next();
    await ctl.ok(`[shout] ${channel}!during the reload`);
    const second = open(server.publicUrl, user, { resume: saved });
    expect(await second.messages.next("the replayed shout")).toBe("during the reload");
    expect(second.log).toEqual([["during the reload", { source: String(channel), offset: 2 }]]);
    second.connection.close();
  });

  test("resume: a saved point with more sources than one login holds still logs in, keeping the last listed", async () => {
    const user = await newUser(ctl);
    const first = open(server.publicUrl, user);
    await untilOnline(ctl, user, first);
    await ctl.ok(`[whisper] ${user.id}!before the reload`);
    expect(await first.messages.next()).toBe("before the reload");
    const saved = first.connection.resume!;
    first.connection.close();
    await first.closes.next();
    // 3,000 stale channel positions (about 40 KB listed) ahead of the whisper stream's ("u" comes last:
    // JavaScript lists integer keys first), as a page that knew many channels would have saved.
    const positions: Record<string, number> = {};
    for (let i = 0; i < 3_000; i++) positions[String(1_000_000 + i)] = 1_000_000;
    Object.assign(positions, saved.positions);
    await ctl.ok(`[whisper] ${user.id}!during the reload`);
    const second = open(server.publicUrl, user, { resume: { epoch: saved.epoch, positions } });
    expect(await second.messages.next("the replayed whisper")).toBe("during the reload");
    expect(second.log[0]).toEqual(["during the reload", { source: "u", offset: 3 }]);
    expect(second.connection.closeCode).toBeUndefined();
    second.connection.close();
  });
});

/**
 * A public port that answers any login with exactly these v2 frames, for what webtalk itself no longer
 * sends (offsets out of order or repeated); ended by the test.
 */
function scriptedV2Server(frames: string[]) {
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request, srv) {
      if (srv.upgrade(request, { headers: { "Sec-WebSocket-Protocol": "webtalk.v2" } })) return undefined;
      return new Response("not a WebSocket", { status: 400 });
    },
    websocket: {
      message(ws) {
        for (const frame of frames) ws.send(frame);
      },
    },
  });
}

describe("webtalk.v2 offsets that are not the last plus one", () => {
  test("a repeated, a late and a skipped-ahead offset are each reported to onGap; the late ones are not delivered", async () => {
    const fake = scriptedV2Server(["#epoch e1", "7:1!a", "7:2!b", "7:2!b again", "7:1!late", "7:5!ahead", "7:6!next", "u:1!marker"]);
    const page = open(`ws://127.0.0.1:${fake.port}/webtalk`, { id: 1, salt: "s", token: "1!s" }, { minDelay: 60_000 });
    try {
      expect(await page.messages.take(5)).toEqual(["a", "b", "ahead", "next", "marker"]);
      expect(page.log.map(([, meta]) => meta)).toEqual([
        { source: "7", offset: 1 },
        { source: "7", offset: 2 },
        { source: "7", offset: 5 },
        { source: "7", offset: 6 },
        { source: "u", offset: 1 },
      ]);
      // One gap per offset that was not the last plus one: 2 again, 1 after 2, 5 after 2.
      expect(await page.gaps.take(3, "the gaps")).toEqual(["7", "7", "7"]);
      expect(page.gaps.size).toBe(0);
      expect(page.connection.resume).toEqual({ epoch: "e1", positions: { "7": 6, u: 1 } });
    } finally {
      page.connection.close();
      fake.stop(true);
    }
  });

  test("with a real server: a channel left and joined again moves on by its #at, so the skip is no gap", async () => {
    const user = await newUser(ctl);
    const channel = Number(await ctl.ok("[newchannel]"));
    await ctl.ok(`[join] ${channel}!${user.id}`);
    const page = open(server.publicUrl, user);
    try {
      await untilOnline(ctl, user, page);
      await ctl.ok(`[shout] ${channel}!first`);
      expect(await page.messages.next()).toBe("first");
      await ctl.ok(`[leave] ${channel}!${user.id}`);
      await ctl.ok(`[shout] ${channel}!while away`);
      await ctl.ok(`[join] ${channel}!${user.id}`);
      await ctl.ok(`[shout] ${channel}!back`);
      expect(await page.messages.next()).toBe("back");
      expect(page.log.at(-1)).toEqual(["back", { source: String(channel), offset: 3 }]);
      // The shout while the user was not a member was never the page's: the join told it where it
      // starts again (#at), so "back" follows on, and the page has nothing to reload.
      expect(page.gaps.size).toBe(0);
    } finally {
      page.connection.close();
    }
  });
});

describe("reconnection", () => {
  test("names its tab in the upgrade URL (?tab=), the same on every reconnect, another in another page", async () => {
    const urls: string[] = [];
    const fake = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (request, srv) => (urls.push(request.url), srv.upgrade(request) ? undefined : new Response("no", { status: 400 })),
      // 1011 is not final: the page reconnects.
      websocket: { open: (ws) => ws.close(1011, "again"), message() {} },
    });
    const first = connect(`ws://127.0.0.1:${fake.port}/webtalk?x=1`, "1!salt", { minDelay: 5, maxDelay: 10, protocol: "v1" });
    const second = connect(`ws://127.0.0.1:${fake.port}/webtalk?x=2`, "1!salt", { minDelay: 5, maxDelay: 10, protocol: "v1" });
    const deadline = Date.now() + 5_000;
    while (urls.filter((u) => u.includes("x=1")).length < 2 && Date.now() < deadline) await Bun.sleep(5);
    first.close();
    second.close();
    fake.stop(true);
    const tabs = (x: string) => urls.filter((u) => u.includes(`x=${x}`)).map((u) => new URL(u).searchParams.get("tab"));
    expect(tabs("1").length).toBeGreaterThanOrEqual(2);
    expect(tabs("1")[0]).toMatch(/^[a-z0-9]{1,64}$/);
    expect(new Set(tabs("1")).size).toBe(1);
    expect(tabs("2")[0]).not.toBe(tabs("1")[0]);
  });

  test("after network loss it reconnects with growing, capped, jittered delays and logs in again", async () => {
    const proxy = new TcpProxy(server.public.port);
    proxy.up();
    const user = await newUser(ctl);
    const page = open(`ws://127.0.0.1:${proxy.port}/webtalk`, user, { minDelay: 10, maxDelay: 80 });
    try {
      await untilOnline(ctl, user, page);

      // The network goes away: the connection drops and every attempt is refused for a while.
      proxy.down();
      proxy.cut();
      const delays: number[] = [];
      for (let i = 0; i < 6; i++) {
        const info = await page.closes.next(`close ${i + 1}`);
        expect(info.final).toBe(false);
        delays.push(info.reconnectIn!);
      }
      // Attempt k waits a random time below min(80, 10·2^k): 10, 20, 40, 80, 80, 80.
      const ceilings = [10, 20, 40, 80, 80, 80];
      delays.forEach((delay, k) => expect(delay).toBeLessThanOrEqual(ceilings[k]!));
      expect(page.connection.closeCode).toBe(1006);

      // The network comes back: the next attempt logs in with the same ID!SALT.
      proxy.up();
      await untilOnline(ctl, user, page);
      expect(page.connection.state).toBe("open");
    } finally {
      page.connection.close();
      proxy.stop();
    }
  });

  test("1001 (server stopping) is not final: the page waits to reconnect", async () => {
    const other = await startTestServer();
    const c = await ControlClient.connect(other.private.port);
    const user = await newUser(c);
    const page = open(other.publicUrl, user, { minDelay: 60_000 });
    await untilOnline(c, user, page);
    c.close();
    await other.stop();
    const info = await page.closes.next("the shutdown close");
    expect(info).toMatchObject({ code: 1001, reason: "server shutting down", final: false });
    expect(page.connection.state).toBe("waiting");
    page.connection.close();
    expect(page.connection.state).toBe("closed");
  });
});

describe("final close codes stop reconnection", () => {
  test("the final codes are the README's", () => {
    expect(FINAL_CODES).toEqual([4001, 4002, 4004, 4005]);
  });

  const cases: [number, string, (user: User) => Promise<unknown>][] = [
    [4002, "replaced by another login", async (user) => (await Browser.open(server.publicUrl)).send(user.token)],
    [4004, "user killed", (user) => ctl.ok(`[killuser] ${user.id}`)],
    [4005, "kicked", (user) => ctl.ok(`[kick] ${user.id}`)],
  ];
  test.each(cases)("%d %s", async (code, reason, act) => {
    const user = await newUser(ctl);
    const page = open(server.publicUrl, user, { minDelay: 1 });
    await untilOnline(ctl, user, page);
    await act(user);
    const info = await page.closes.next(`the ${code} close`);
    expect(info).toEqual({ code, reason, final: true, reconnectIn: undefined });
    expect(page.connection.state).toBe("closed");
    expect(page.connection.closeCode).toBe(code);
  });

  test("4001 login failed", async () => {
    const user = await newUser(ctl);
    const page = open(server.publicUrl, { ...user, token: `${user.id}!wrong` }, { minDelay: 1 });
    expect(await page.closes.next()).toEqual({ code: 4001, reason: "login failed", final: true, reconnectIn: undefined });
    expect(page.connection.state).toBe("closed");
  });
});
