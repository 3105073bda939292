// A webtalk.v2 page or SSE stream that heard nothing from a source before it was cut still resumes it:
// the login told it where each source stood (`#at`, the SSE `at` event's id), it lists them, and what
// was sent while it was away arrives once, in order, then live. Before, such a source resumed live and
// the messages sent meanwhile were lost. With --sessions 2 a whisper sent while one tab is away goes to
// the other tab and is not held, so the whisper stream shows it as plainly as a channel.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, newUser, startTestServer, within, type User } from "./helpers.ts";
import { eventsUrl, SseClient } from "./sse-client.ts";
import { endCluster, spawnCluster } from "./cluster-kit.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";
import type { Spawned } from "./process.ts";

/** A v2 login's notices up to its `#at`: the epoch and the starting points it names. */
async function startOf(browser: Browser): Promise<{ epoch: string; at: Map<string, number> }> {
  let epoch = "";
  for (;;) {
    const line = await browser.messages.next("#epoch and #at");
    if (line.startsWith("#epoch ")) epoch = line.slice("#epoch ".length);
    if (line.startsWith("#at ")) {
      const at = new Map(line.slice("#at ".length).split(",").map((item) => item.split(":") as [string, string]).map(([s, o]) => [s, Number(o)] as [string, number]));
      return { epoch, at };
    }
  }
}

async function v2Login(url: string, text: string): Promise<Browser> {
  const browser = await Browser.open(url, "webtalk.v2", { atNotices: true });
  browser.send(text);
  return browser;
}

/** Numbered messages until `last` arrives, notices left out. */
async function numberedUntil(browser: Browser, last: string): Promise<string[]> {
  const got: string[] = [];
  for (;;) {
    const line = await browser.messages.next(`the message ${last}`);
    if (line.startsWith("#")) continue;
    got.push(line);
    if (line.endsWith(`!${last}`)) return got;
  }
}

/** The browsers the server has, every user's ([stats] sessions: [online] counts a user's tabs once). */
async function sessionCount(ctl: ControlClient): Promise<number> {
  return Number(/sessions=(\d+)/.exec(await ctl.call("[stats]"))?.[1]);
}

async function sessionsAre(ctl: ControlClient, want: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const stats = await ctl.call("[stats]");
    if (Number(/sessions=(\d+)/.exec(stats)?.[1]) === want) return;
    if (Date.now() > deadline) throw new Error(`sessions never became ${want}: ${stats}`);
    await Bun.sleep(20);
  }
}

describe("one server (--sessions 2)", () => {
  let server: Webtalk;
  let ctl: ControlClient;
  beforeAll(async () => {
    server = await startTestServer({ sessions: 2 });
    ctl = await ControlClient.connect(server.private.port);
  });
  afterAll(async () => {
    ctl.close();
    await server.stop();
  });

  async function userInChannel(): Promise<{ user: User; channel: string }> {
    const user = await newUser(ctl);
    const channel = await ctl.ok("[newchannel]");
    await ctl.ok(`[join] ${channel}!${user.id}`);
    // The channel has a history before the page comes: its starting point is not 0.
    await ctl.ok(`[shout] ${channel}!before the page`);
    return { user, channel };
  }

  test("#at names every source the login did not list, at the offset it had reached", async () => {
    const { user, channel } = await userInChannel();
    await ctl.ok(`[whisper] ${user.id}!held`);
    const tab = await v2Login(server.publicUrl, user.token);
    // The held whisper comes first, then #at, which names it: the page's position for u is not lowered.
    expect(await tab.messages.next("#epoch")).toStartWith("#epoch ");
    expect(await tab.messages.next("the held whisper")).toBe("u:1!held");
    const { at } = await startOf(tab);
    expect(at.get("u")).toBe(1);
    expect(at.get(channel)).toBe(1);
    expect(at.has("1")).toBe(true);
    tab.close();
  });

  test("WebSocket: a tab that heard nothing, cut, resumes from #at: what was sent meanwhile arrives once, in order", async () => {
    const { user, channel } = await userInChannel();
    const base = await sessionCount(ctl);
    const tab = await v2Login(server.publicUrl, user.token);
    const { epoch, at } = await startOf(tab);
    const other = await v2Login(server.publicUrl, user.token);
    await startOf(other);
    await sessionsAre(ctl, base + 2);
    tab.close();
    await within(tab.closed, "the cut");
    await sessionsAre(ctl, base + 1);
    // The other tab keeps the user online: these whispers are sent to it, not held.
    await ctl.ok(`[whisper] ${user.id}!away 1`);
    await ctl.ok(`[shout] ${channel}!away 2`);
    await ctl.ok(`[whisper] ${user.id}!away 3`);
    const positions = [...at].map(([s, o]) => `${s}:${o}`).join(",");
    const back = await v2Login(server.publicUrl, `${user.token}!${epoch}!${positions}`);
    await ctl.ok(`[shout] ${channel}!live`);
    const got = await numberedUntil(back, "live");
    expect(got.filter((m) => m.startsWith("u:"))).toEqual(["u:1!away 1", "u:2!away 3"]);
    expect(got.filter((m) => m.startsWith(`${channel}:`))).toEqual([`${channel}:2!away 2`, `${channel}:3!live`]);
    back.close();
    other.close();
  });

  test("SSE: a stream that heard nothing, cut, reconnects with Last-Event-ID: what was sent meanwhile arrives once, in order", async () => {
    const { user, channel } = await userInChannel();
    const base = await sessionCount(ctl);
    const stream = await SseClient.open(eventsUrl(server.publicUrl, user.token));
    expect(stream.response.status).toBe(200);
    const atEvent = await stream.next("the at event", true);
    if (atEvent.type === "epoch") Object.assign(atEvent, await stream.next("the at event", true));
    expect(atEvent.type).toBe("at");
    // The id carries the starting points: the browser's Last-Event-ID names every source.
    expect(atEvent.id).toContain(`${channel}:1`);
    expect(atEvent.id).toContain("u:0");
    const other = await v2Login(server.publicUrl, user.token);
    await startOf(other);
    await sessionsAre(ctl, base + 2);
    stream.cut();
    await sessionsAre(ctl, base + 1);
    await ctl.ok(`[whisper] ${user.id}!away 1`);
    await ctl.ok(`[shout] ${channel}!away 2`);
    const again = await SseClient.open(eventsUrl(server.publicUrl, user.token), { "Last-Event-ID": stream.lastEventId });
    await ctl.ok(`[shout] ${channel}!live`);
    const got: string[] = [];
    for (let event = await again.next("the replay"); ; event = await again.next("more")) {
      if (event.type === "message") got.push(`${/(u|\d+):(\d+)$/.exec(event.id)?.[0]} ${event.data}`);
      else if (event.type !== "at") got.push(`${event.type} ${event.data}`);
      if (event.data === "live") break;
    }
    expect(got.filter((g) => g.startsWith("u:"))).toEqual(["u:1 away 1"]);
    expect(got.filter((g) => g.startsWith(`${channel}:`))).toEqual([`${channel}:2 away 2`, `${channel}:3 live`]);
    expect(got.filter((g) => g.startsWith("gap"))).toEqual([]);
    again.cut();
    other.close();
  });

  test("a channel joined while connected and not heard from, cut: the join's #at resumes it", async () => {
    const user = await newUser(ctl);
    const channel = await ctl.ok("[newchannel]");
    await ctl.ok(`[shout] ${channel}!before the join`);
    const tab = await v2Login(server.publicUrl, user.token);
    const { epoch, at } = await startOf(tab);
    await ctl.ok(`[join] ${channel}!${user.id}`);
    expect(await tab.messages.next("the join's #at")).toBe(`#at ${channel}:1`);
    tab.close();
    await within(tab.closed, "the cut");
    await ctl.ok(`[shout] ${channel}!away`);
    const positions = [...at, [channel, 1] as const].map(([s, o]) => `${s}:${o}`).join(",");
    const back = await v2Login(server.publicUrl, `${user.token}!${epoch}!${positions}`);
    await ctl.ok(`[shout] ${channel}!live`);
    expect(await numberedUntil(back, "live")).toEqual([`${channel}:2!away`, `${channel}:3!live`]);
    back.close();
  });

  test("SSE: a channel joined while connected is in the next id at once", async () => {
    const user = await newUser(ctl);
    const channel = await ctl.ok("[newchannel]");
    await ctl.ok(`[shout] ${channel}!before the join`);
    const stream = await SseClient.open(eventsUrl(server.publicUrl, user.token));
    await stream.next("the login's at event", true);
    await ctl.ok(`[join] ${channel}!${user.id}`);
    let event = await stream.next("the join's at event", true);
    while (event.type !== "at" || event.data !== `${channel}:1`) event = await stream.next("the join's at event", true);
    expect(event.id).toContain(`${channel}:1`);
    stream.cut();
    await ctl.ok(`[shout] ${channel}!away`);
    const again = await SseClient.open(eventsUrl(server.publicUrl, user.token), { "Last-Event-ID": stream.lastEventId });
    const missed = await again.next("the missed shout");
    expect(missed.data).toBe("away");
    expect(missed.id).toEndWith(`,${channel}:2`);
    again.cut();
  });

  test("a v1 login is told nothing new: the original protocol is unchanged", async () => {
    const { user, channel } = await userInChannel();
    const base = await sessionCount(ctl);
    const browser = await Browser.open(server.publicUrl);
    browser.send(user.token);
    await sessionsAre(ctl, base + 1);
    await ctl.ok(`[shout] ${channel}!plain`);
    expect(await browser.messages.next("the shout")).toBe("plain");
    browser.close();
  });
});

const redis = useRedis();

describe.skipIf(!haveRedis)("two --redis nodes (--sessions 2)", () => {
  test("a tab on node A that heard nothing resumes on node B and gets what its other tab was sent meanwhile", async () => {
    const nodes: Spawned[] = await spawnCluster(redis, uniquePrefix("unheard"), 2, ["--sessions", "2"]);
    const ctls = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
    try {
      const [a, b] = nodes as [Spawned, Spawned];
      const user = await newUser(ctls[0]!);
      const channel = await ctls[0]!.ok("[newchannel]");
      await ctls[0]!.ok(`[join] ${channel}!${user.id}`);
      await ctls[1]!.ok(`[shout] ${channel}!before the page`);
      const tab = await v2Login(a.publicUrl, user.token);
      const { epoch, at } = await startOf(tab);
      expect(at.get(channel)).toBe(1);
      const other = await v2Login(b.publicUrl, user.token);
      await startOf(other);
      tab.close();
      await within(tab.closed, "the cut");
      // Node A has let the tab go once a whisper reaches only the other tab's node; sent from both nodes.
      await ctls[1]!.ok(`[whisper] ${user.id}!away 1`);
      await ctls[0]!.ok(`[shout] ${channel}!away 2`);
      const positions = [...at].map(([s, o]) => `${s}:${o}`).join(",");
      const back = await v2Login(b.publicUrl, `${user.token}!${epoch}!${positions}`);
      await ctls[0]!.ok(`[shout] ${channel}!live`);
      const got = await numberedUntil(back, "live");
      expect(got.filter((m) => m.startsWith("u:"))).toEqual(["u:1!away 1"]);
      expect(got.filter((m) => m.startsWith(`${channel}:`))).toEqual([`${channel}:2!away 2`, `${channel}:3!live`]);
      back.close();
      other.close();
    } finally {
      await endCluster({ pages: [], ctls, nodes });
    }
  }, 60_000);

  test("logins on node B while node A pipelines shouts: each page's offsets go on from its #at, none late, none skipped", async () => {
    const nodes: Spawned[] = await spawnCluster(redis, uniquePrefix("unheard"), 2);
    const ctls = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
    const bad: string[] = [];
    try {
      const user = await newUser(ctls[0]!);
      const channel = await ctls[0]!.ok("[newchannel]");
      await ctls[0]!.ok(`[join] ${channel}!${user.id}`);
      let sending = true;
      const pump = (async () => {
        // Bursts of 5: a login's read from its starting point finds a few (under a heavier flood it finds
        // more than a page, and the channel is live from the login, unnamed: see the last check).
        for (let i = 0; sending; i++) {
          ctls[0]!.write(encodeFrames(Array.from({ length: 5 }, (_, k) => `[shout] ${channel}!s${i * 5 + k}`)));
          await ctls[0]!.replies.take(5, "shout replies", 20_000);
          await Bun.sleep(1);
        }
      })();
      let named = 0;
      for (let round = 0; round < 15; round++) {
        const page = await v2Login(nodes[1]!.publicUrl, user.token);
        const { at } = await startOf(page);
        const start = at.get(channel);
        await Bun.sleep(60);
        page.close();
        await within(page.closed, "the page to close");
        const offsets = (await page.messages.take(page.messages.size)).filter((m) => m.startsWith(`${channel}:`)).map((m) => Number(m.slice(channel.length + 1, m.indexOf("!"))));
        if (offsets.length === 0) continue;
        if (start !== undefined) named++;
        if (start !== undefined && offsets[0] !== start + 1) bad.push(`round ${round}: #at ${start}, first ${offsets[0]}`);
        for (let i = 1; i < offsets.length; i++) if (offsets[i] !== offsets[i - 1]! + 1) bad.push(`round ${round}: ${offsets[i - 1]} then ${offsets[i]}`);
      }
      sending = false;
      await pump;
      expect(bad).toEqual([]);
      expect(named).toBeGreaterThan(0);
    } finally {
      await endCluster({ pages: [], ctls, nodes });
    }
  }, 60_000);

  test("--sessions 2: tabs logging in on node B while node A pipelines whispers go on from #at u, none late, none skipped", async () => {
    const nodes: Spawned[] = await spawnCluster(redis, uniquePrefix("unheard"), 2, ["--sessions", "2"]);
    const ctls = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
    const bad: string[] = [];
    try {
      const user = await newUser(ctls[0]!);
      // A first tab on node A keeps the user online: whispers are routed, not held.
      const first = await v2Login(nodes[0]!.publicUrl, user.token);
      await startOf(first);
      let sending = true;
      const pump = (async () => {
        for (let i = 0; sending; i++) {
          ctls[0]!.write(encodeFrames(Array.from({ length: 5 }, (_, k) => `[whisper] ${user.id}!w${i * 5 + k}`)));
          await ctls[0]!.replies.take(5, "whisper replies", 20_000);
          await Bun.sleep(1);
        }
      })();
      let named = 0;
      for (let round = 0; round < 15; round++) {
        const page = await v2Login(nodes[1]!.publicUrl, user.token);
        const { at } = await startOf(page);
        const start = at.get("u");
        await Bun.sleep(60);
        page.close();
        await within(page.closed, "the page to close");
        const offsets = (await page.messages.take(page.messages.size)).filter((m) => m.startsWith("u:")).map((m) => Number(m.slice(2, m.indexOf("!"))));
        if (offsets.length === 0) continue;
        if (start !== undefined) named++;
        if (start !== undefined && offsets[0] !== start + 1) bad.push(`round ${round}: #at u:${start}, first ${offsets[0]}`);
        for (let i = 1; i < offsets.length; i++) if (offsets[i] !== offsets[i - 1]! + 1) bad.push(`round ${round}: ${offsets[i - 1]} then ${offsets[i]}`);
      }
      sending = false;
      await pump;
      first.close();
      expect(bad).toEqual([]);
      expect(named).toBeGreaterThan(0);
    } finally {
      await endCluster({ pages: [], ctls, nodes });
    }
  }, 60_000);

  test("held whispers, then a login on another node: held ones up to #at u before it, live ones after, each once", async () => {
    const nodes: Spawned[] = await spawnCluster(redis, uniquePrefix("unheard"), 2);
    const ctls = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
    try {
      const user = await newUser(ctls[0]!);
      for (let i = 1; i <= 3; i++) expect(await ctls[0]!.ok(`[whisper] ${user.id}!held ${i}`)).toBe("message queued");
      const page = await v2Login(nodes[1]!.publicUrl, user.token);
      const before: string[] = [];
      for (let line = await page.messages.next("the login"); !line.startsWith("#at "); line = await page.messages.next("the login")) before.push(line);
      expect(before.slice(1)).toEqual(["u:1!held 1", "u:2!held 2", "u:3!held 3"]);
      await ctls[0]!.ok(`[whisper] ${user.id}!live`);
      expect(await numberedUntil(page, "live")).toEqual(["u:4!live"]);
      page.close();
    } finally {
      await endCluster({ pages: [], ctls, nodes });
    }
  }, 60_000);

  test("a channel joined through node A while the page is on node B: #at from the join's own script", async () => {
    const nodes: Spawned[] = await spawnCluster(redis, uniquePrefix("unheard"), 2);
    const ctls = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
    try {
      const [, b] = nodes as [Spawned, Spawned];
      const user = await newUser(ctls[0]!);
      const channel = await ctls[0]!.ok("[newchannel]");
      await ctls[0]!.ok(`[shout] ${channel}!before the join`);
      const tab = await v2Login(b.publicUrl, user.token);
      const { epoch, at } = await startOf(tab);
      await ctls[0]!.ok(`[join] ${channel}!${user.id}`);
      expect(await tab.messages.next("the join's #at")).toBe(`#at ${channel}:1`);
      tab.close();
      await within(tab.closed, "the cut");
      await ctls[0]!.ok(`[shout] ${channel}!away`);
      const positions = [...at, [channel, 1] as const].map(([s, o]) => `${s}:${o}`).join(",");
      const back = await v2Login(b.publicUrl, `${user.token}!${epoch}!${positions}`);
      await ctls[1]!.ok(`[shout] ${channel}!live`);
      expect(await numberedUntil(back, "live")).toEqual([`${channel}:2!away`, `${channel}:3!live`]);
      back.close();
    } finally {
      await endCluster({ pages: [], ctls, nodes });
    }
  }, 60_000);
});
