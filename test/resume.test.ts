// webtalk.v2: numbered messages, resume from positions after a cut, explicit gaps, v1 unchanged.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeFrames } from "../src/protocol/frame.ts";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, Inbox, loggedIn, newUser, startTestServer, within, type User, useServer } from "./helpers.ts";
import { MAIN, spawnServer } from "./process.ts";

/** A v2 page: remembers the last offset per source, as the browser client does. */
class V2Page {
  readonly positions = new Map<string, number>();
  readonly received = new Map<string, number[]>();
  readonly inbox = new Inbox<string>();
  epoch = "";
  private constructor(readonly browser: Browser) {
    browser.ws.addEventListener("message", (event) => {
      const text = String(event.data);
      if (text.startsWith("#epoch ")) this.epoch = text.slice(7);
      const match = /^(u|\d+):(\d+)!/.exec(text);
      if (match) {
        const [, source, offset] = match as unknown as [string, string, string];
        this.positions.set(source, Number(offset));
        const list = this.received.get(source) ?? [];
        list.push(Number(offset));
        this.received.set(source, list);
      }
    });
  }

  static async login(server: Webtalk, user: User, resume?: { epoch: string; positions: Map<string, number> }): Promise<V2Page> {
    const browser = await Browser.open(server.publicUrl, "webtalk.v2");
    expect(browser.ws.protocol).toBe("webtalk.v2");
    const page = new V2Page(browser);
    const list = resume ? [...resume.positions].map(([s, o]) => `${s}:${o}`).join(",") : "";
    browser.send(resume ? `${user.token}!${resume.epoch}!${list}` : user.token);
    const first = await browser.messages.next("the epoch notice");
    expect(first).toStartWith("#epoch ");
    return page;
  }

  next(): Promise<string> {
    return this.browser.messages.next();
  }
}

let server: Webtalk;
let ctl: ControlClient;
useServer((s, c) => ((server = s), (ctl = c)));

describe("the v2 wire format", () => {
  test("#epoch first, then SOURCE:OFFSET!MESSAGE numbered from 1 per source", async () => {
    const user = await newUser(ctl);
    const channel = await ctl.ok("[newchannel]");
    await ctl.ok(`[join] ${channel}!${user.id}`);
    const page = await V2Page.login(server, user);
    expect(page.epoch).toMatch(/^[A-Za-z0-9_-]+$/);
    await ctl.ok(`[whisper] ${user.id}!hello!world`);
    await ctl.ok(`[shout] ${channel}!news`);
    await ctl.ok(`[whisper] ${user.id}!again`);
    await ctl.ok(`[shout] ${channel}!more`);
    expect(await page.browser.messages.take(4)).toEqual(["u:1!hello!world", `${channel}:1!news`, "u:2!again", `${channel}:2!more`]);
    page.browser.close();
  });

  test("held whispers reach a v2 login numbered, after the epoch", async () => {
    const user = await newUser(ctl);
    await ctl.ok(`[whisper] ${user.id}!while away`);
    const page = await V2Page.login(server, user);
    expect(await page.next()).toBe("u:1!while away");
    page.browser.close();
  });

  test("a v1 client on the same channel sees exactly the original plain text", async () => {
    const channel = await ctl.ok("[newchannel]");
    const v2User = await newUser(ctl);
    await ctl.ok(`[join] ${channel}!${v2User.id}`);
    const page = await V2Page.login(server, v2User);
    const [v1, v1User] = await loggedIn(server, ctl);
    await ctl.ok(`[join] ${channel}!${v1User.id}`);
    await ctl.ok(`[shout] ${channel}!both`);
    await ctl.ok(`[whisper] ${v1User.id}!just you`);
    expect(await v1.messages.take(2)).toEqual(["both", "just you"]);
    expect(await page.next()).toBe(`${channel}:1!both`);
    expect(await ctl.call(`[count] ${channel}`)).toBe("[ok] 2!2");
    v1.close();
    page.browser.close();
  });

  test("a malformed v2 login closes with 4001", async () => {
    const user = await newUser(ctl);
    const browser = await Browser.open(server.publicUrl, "webtalk.v2");
    browser.send(`${user.token}!epoch!u:x`);
    expect((await browser.closedWithin()).code).toBe(4001);
  });
});

describe("resuming", () => {
  test("cut at random points: every missed message arrives exactly once, in order, then live ones", async () => {
    const user = await newUser(ctl);
    const channel = await ctl.ok("[newchannel]");
    await ctl.ok(`[join] ${channel}!${user.id}`);
    const seen = new Map<string, number[]>([["u", []], [channel, []]]);
    const positions = new Map<string, number>();
    const expected = new Map<string, number>([["u", 0], [channel, 0]]);
    const send = async (count: number) => {
      const frames: string[] = [];
      for (let i = 0; i < count; i++) {
        const source = Math.random() < 0.5 ? "u" : channel;
        const n = expected.get(source)! + 1;
        expected.set(source, n);
        frames.push(source === "u" ? `[whisper] ${user.id}!w${n}` : `[shout] ${channel}!s${n}`);
      }
      ctl.write(encodeFrames(frames));
      await ctl.replies.take(count, "replies");
    };
    let page = await V2Page.login(server, user);
    const epoch = page.epoch;
    // The page knows its sources from the start: position 0 asks for everything from the first message.
    positions.set("u", 0);
    positions.set(channel, 0);
    const collect = () => {
      for (const [source, offsets] of page.received) seen.get(source)!.push(...offsets);
      for (const [source, offset] of page.positions) positions.set(source, offset);
    };
    for (let round = 0; round < 25; round++) {
      await send(20 + Math.floor(Math.random() * 40));
      // Take a random number of messages, then cut the socket without a close frame: the rest is in flight.
      for (let i = Math.floor(Math.random() * 10); i > 0; i--) await page.next();
      (page.browser.ws as unknown as { terminate(): void }).terminate();
      await within(page.browser.closed, "the cut");
      collect();
      await send(Math.floor(Math.random() * 30)); // sent while the page is away
      page = await V2Page.login(server, user, { epoch, positions });
    }
    await send(10);
    const caughtUp = () =>
      [...expected].every(([source, n]) => lastOf([...seen.get(source)!, ...(page.received.get(source) ?? [])]) === n);
    for (let i = 0; i < 10_000 && !caughtUp(); i++) await page.next();
    collect();
    for (const [source, n] of expected) {
      expect(seen.get(source)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    }
    page.browser.close();
  }, 30_000);

  test("a window that moved past the position: one #gap per affected source, then what the window holds, then live", async () => {
    const small = await startTestServer({ replayCount: 5 });
    const c = await ControlClient.connect(small.private.port);
    const user = await newUser(c);
    const kept = await c.ok("[newchannel]");
    const lost = await c.ok("[newchannel]");
    await c.ok(`[join] ${kept}!${user.id}`);
    await c.ok(`[join] ${lost}!${user.id}`);
    const listener = await ControlClient.connect(small.private.port);
    await listener.ok("[listen]");
    let page = await V2Page.login(small, user);
    await c.ok(`[shout] ${kept}!k1`);
    await c.ok(`[shout] ${lost}!l1`);
    await c.ok(`[whisper] ${user.id}!w1`);
    expect(await page.browser.messages.take(3)).toEqual([`${kept}:1!k1`, `${lost}:1!l1`, "u:1!w1"]);
    page.browser.close();
    await page.browser.closedWithin();
    for (let i = 2; i <= 3; i++) await c.ok(`[shout] ${kept}!k${i}`);
    for (let i = 2; i <= 12; i++) await c.ok(`[shout] ${lost}!l${i}`);
    for (let i = 2; i <= 20; i++) await c.ok(`[whisper] ${user.id}!w${i}`);
    const positions = new Map(page.positions);
    page = await V2Page.login(small, user, { epoch: page.epoch, positions });
    // The whisper window (5) no longer reaches u:1, but the held queue has every whisper acknowledged
    // "message queued": those below the window come first, then the replayed channel, then each source
    // past its window: its gap and the 5 it still holds.
    const held = Array.from({ length: 14 }, (_, i) => `u:${i + 2}!w${i + 2}`);
    const windowed = Array.from({ length: 5 }, (_, i) => `${lost}:${i + 8}!l${i + 8}`);
    const whispered = Array.from({ length: 5 }, (_, i) => `u:${i + 16}!w${i + 16}`);
    const catchUp = await page.browser.messages.take(14 + 2 + 6 + 6);
    expect(catchUp).toEqual([...held, `${kept}:2!k2`, `${kept}:3!k3`, `#gap ${lost}`, ...windowed, "#gap u", ...whispered]);
    await c.ok(`[shout] ${lost}!live`);
    expect(await page.next()).toBe(`${lost}:13!live`);
    const stats = await c.call("[stats]");
    expect(stats).toContain("replayed=12");
    expect(stats).toContain("gaps=2");
    const events: string[] = [];
    for (let i = 0; i < 10 && events.filter((e) => e.startsWith("[gap]")).length < 2; i++) events.push(await listener.replies.next());
    expect(events.filter((e) => e.startsWith("[gap]"))).toEqual([`[gap] ${user.id}!${lost}`, `[gap] ${user.id}!u`]);
    page.browser.close();
    listener.close();
    c.close();
    await small.stop();
  });

  test("sources not listed are live from now; channels left meanwhile are ignored", async () => {
    const user = await newUser(ctl);
    const a = await ctl.ok("[newchannel]");
    await ctl.ok(`[join] ${a}!${user.id}`);
    let page = await V2Page.login(server, user);
    await ctl.ok(`[shout] ${a}!first`);
    expect(await page.next()).toBe(`${a}:1!first`);
    const epoch = page.epoch;
    page.browser.close();
    await page.browser.closedWithin();
    await ctl.ok(`[shout] ${a}!missed and not asked for`);
    page = await V2Page.login(server, user, { epoch, positions: new Map([["999", 3]]) });
    await ctl.ok(`[shout] ${a}!live`);
    expect(await page.next()).toBe(`${a}:3!live`);
    page.browser.close();
  });

  test("a resume login with positions in 300 sources (far past 256 bytes) is accepted and replays each", async () => {
    const user = await newUser(ctl);
    const channels: string[] = [];
    for (let i = 0; i < 300; i++) channels.push(await ctl.ok("[newchannel]"));
    ctl.write(encodeFrames(channels.map((c) => `[join] ${c}!${user.id}`)));
    await ctl.replies.take(channels.length, "[join] replies");
    let page = await V2Page.login(server, user);
    ctl.write(encodeFrames(channels.map((c) => `[shout] ${c}!seen`)));
    await ctl.replies.take(channels.length, "[shout] replies");
    await page.browser.messages.take(channels.length, "the shouts seen");
    const epoch = page.epoch;
    page.browser.close();
    await page.browser.closedWithin();
    ctl.write(encodeFrames(channels.map((c) => `[shout] ${c}!missed`)));
    await ctl.replies.take(channels.length, "[shout] replies");
    expect([...page.positions].map(([s, o]) => `${s}:${o}`).join(",").length).toBeGreaterThan(1_500);
    page = await V2Page.login(server, user, { epoch, positions: page.positions });
    const replayed = await page.browser.messages.take(channels.length, "the missed shouts");
    expect(new Set(replayed)).toEqual(new Set(channels.map((c) => `${c}:2!missed`)));
    page.browser.close();
  });

  test("after an in-memory restart the epoch changed: a gap, never a wrong replay", async () => {
    const first = await startTestServer();
    let c = await ControlClient.connect(first.private.port);
    const user = await newUser(c);
    const page = await V2Page.login(first, user);
    await c.ok(`[whisper] ${user.id}!before restart`);
    expect(await page.next()).toBe("u:1!before restart");
    const epoch = page.epoch;
    page.browser.close();
    c.close();
    await first.stop();
    // A fresh in-memory server on new ports: nothing carries over, not even the ID (the backend
    // re-created its user). A page that kept its old positions resumes with them.
    const second = await startTestServer();
    c = await ControlClient.connect(second.private.port);
    const again = await newUser(c);
    expect(again.id).toBeGreaterThan(user.id);
    await c.ok(`[whisper] ${again.id}!new world`);
    const resumed = await V2Page.login(second, again, { epoch, positions: new Map([["u", 1]]) });
    expect(resumed.epoch).not.toBe(epoch);
    // The whisper held before the login is delivered (it was acknowledged), then the gap.
    expect(await resumed.next()).toBe("u:1!new world");
    expect(await resumed.next()).toBe("#gap u");
    await c.ok(`[whisper] ${again.id}!live`);
    expect(await resumed.next()).toBe("u:2!live");
    resumed.browser.close();
    c.close();
    await second.stop();
  });
});

describe("with --data", () => {
  const dir = mkdtempSync(join(tmpdir(), "webtalk-resume-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("offsets and windows survive a clean restart: a full replay, no gap", async () => {
    const data = join(dir, "clean.db");
    let server = await startTestServer({ data });
    let c = await ControlClient.connect(server.private.port);
    const user = await newUser(c);
    const channel = await c.ok("[newchannel]");
    await c.ok(`[join] ${channel}!${user.id}`);
    const page = await V2Page.login(server, user);
    await c.ok(`[whisper] ${user.id}!w1`);
    await c.ok(`[shout] ${channel}!s1`);
    expect(await page.browser.messages.take(2)).toEqual(["u:1!w1", `${channel}:1!s1`]);
    page.browser.close();
    await page.browser.closedWithin();
    await c.ok(`[shout] ${channel}!s2 while away`);
    c.close();
    await server.stop();

    server = await startTestServer({ data });
    c = await ControlClient.connect(server.private.port);
    await c.ok(`[shout] ${channel}!s3 after restart`);
    await c.ok(`[whisper] ${user.id}!w2 after restart`);
    const resumed = await V2Page.login(server, user, { epoch: page.epoch, positions: new Map([["u", 1], [channel, 1]]) });
    expect(resumed.epoch).toBe(page.epoch);
    expect(await resumed.browser.messages.take(3)).toEqual([
      "u:2!w2 after restart",
      `${channel}:2!s2 while away`,
      `${channel}:3!s3 after restart`,
    ]);
    resumed.browser.close();
    c.close();
    await server.stop();
  });

  test("after a crash the epoch changes: gaps, never a wrong replay", async () => {
    const data = join(dir, "crash.db");
    const args = ["--public", "127.0.0.1:0", "--private", "127.0.0.1:0", "--data", data, "--data-sync", "normal"];
    const first = await spawnServer(["bun", MAIN, ...args], { cwd: dir });
    let c = await ControlClient.connect(first.privatePort);
    const user = await newUser(c);
    const page = await V2Page.login({ publicUrl: first.publicUrl } as Webtalk, user);
    await c.ok(`[whisper] ${user.id}!before the crash`);
    expect(await page.next()).toBe("u:1!before the crash");
    first.proc.kill("SIGKILL");
    await first.stop();
    const second = await spawnServer(["bun", MAIN, ...args], { cwd: dir });
    c = await ControlClient.connect(second.privatePort);
    const resumed = await V2Page.login({ publicUrl: second.publicUrl } as Webtalk, user, { epoch: page.epoch, positions: new Map([["u", 1]]) });
    expect(resumed.epoch).not.toBe(page.epoch);
    expect(await resumed.next()).toBe("#gap u");
    resumed.browser.close();
    c.close();
    await second.stop();
  }, 30_000);
});

function lastOf(list: number[]): number {
  return list.length === 0 ? 0 : list[list.length - 1]!;
}
