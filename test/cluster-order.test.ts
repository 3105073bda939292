// A cluster's numbered messages reach every node in order (issue 14 item 7): two nodes on a real Redis,
// several control connections pipelining shouts to one channel and whispers to one user, and webtalk.v2
// browsers on both nodes, each of which must see every source's offsets rise by exactly one.

import { describe, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, newUser, startTestServer, within, type User } from "./helpers.ts";
import { haveRedis, useRedis, uniquePrefix } from "./redis-server.ts";

const redis = useRedis();

/** A webtalk.v2 browser that records, per source, every offset in the order it arrived. */
class Numbered {
  readonly offsets = new Map<string, number[]>();
  #count = 0;
  #wanted = 0;
  #reached = Promise.withResolvers<void>();

  private constructor(readonly browser: Browser) {
    browser.ws.addEventListener("message", (event) => {
      const match = /^(u|\d+):(\d+)!/.exec(String(event.data));
      if (!match) return;
      const list = this.offsets.get(match[1]!) ?? [];
      list.push(Number(match[2]));
      this.offsets.set(match[1]!, list);
      if (++this.#count === this.#wanted) this.#reached.resolve();
    });
  }

  /** Logs in and returns once admitted: the whisper held before the login has arrived. */
  static async login(node: Webtalk, ctl: ControlClient, user: User): Promise<Numbered> {
    expect(await ctl.call(`[whisper] ${user.id}!admitted`)).toBe("[ok] message queued");
    const page = new Numbered(await Browser.open(node.publicUrl, "webtalk.v2"));
    page.browser.send(user.token);
    for (let m = ""; !m.endsWith("!admitted"); m = await page.browser.messages.next("the login marker"));
    return page;
  }

  /** Waits until `count` numbered messages have arrived in all (the login marker included). */
  received(count: number): Promise<void> {
    this.#wanted = count;
    if (this.#count >= count) return Promise.resolve();
    return within(this.#reached.promise, `${count} numbered messages (have ${this.#count})`, 20_000);
  }
}

/** A webtalk.v2 browser that resumes from its positions, as /webtalk.js does, and can be cut without a close. */
class V2Resumer {
  readonly positions = new Map<string, number>();
  readonly received = new Map<string, number[]>();
  epoch = "";
  #expected: Map<string, number> | undefined;
  #reached = Promise.withResolvers<void>();

  private constructor(readonly browser: Browser) {
    browser.ws.addEventListener("message", (event) => {
      const text = String(event.data);
      if (text.startsWith("#epoch ")) this.epoch = text.slice(7);
      const match = /^(u|\d+):(\d+)!/.exec(text);
      if (!match) return;
      this.positions.set(match[1]!, Number(match[2]));
      const list = this.received.get(match[1]!) ?? [];
      list.push(Number(match[2]));
      this.received.set(match[1]!, list);
      if (this.#expected && this.#hasReached(this.#expected)) this.#reached.resolve();
    });
  }

  static async login(node: Webtalk, user: User, resume?: { epoch: string; positions: Map<string, number> }): Promise<V2Resumer> {
    const browser = await Browser.open(node.publicUrl, "webtalk.v2");
    const page = new V2Resumer(browser);
    if (resume) for (const [source, offset] of resume.positions) page.positions.set(source, offset);
    const list = resume ? [...resume.positions].map(([s, o]) => `${s}:${o}`).join(",") : "";
    browser.send(resume && list ? `${user.token}!${resume.epoch}!${list}` : user.token);
    expect(await browser.messages.next("the epoch notice")).toStartWith("#epoch ");
    return page;
  }

  cut(): void {
    (this.browser.ws as unknown as { terminate(): void }).terminate();
  }

  /** Adds what this browser received to `seen`. */
  collect(seen: Map<string, number[]>): void {
    for (const [source, offsets] of this.received) seen.set(source, [...(seen.get(source) ?? []), ...offsets]);
    this.received.clear();
  }

  /** Waits (bounded) until every source has reached its expected last offset. */
  async until(expected: Map<string, number>): Promise<void> {
    this.#expected = expected;
    // A lost message never arrives: the comparison that follows then names it.
    if (!this.#hasReached(expected)) await within(this.#reached.promise, "the last offsets", 20_000).catch(() => undefined);
  }

  #hasReached(expected: Map<string, number>): boolean {
    return [...expected].every(([source, n]) => (this.positions.get(source) ?? 0) >= n);
  }
}

/** Where a list of offsets is not the previous one plus one: [index, previous, offset]. */
function breaks(offsets: number[]): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let i = 1; i < offsets.length; i++) if (offsets[i] !== offsets[i - 1]! + 1) out.push([i, offsets[i - 1]!, offsets[i]!]);
  return out;
}

describe.skipIf(!haveRedis)("cluster offsets", () => {
  test("two nodes, four control connections pipelining to one channel and one user: every v2 browser sees +1 steps", async () => {
    const prefix = uniquePrefix("order");
    const nodes = [
      await startTestServer({ redis: redis.url, redisPrefix: prefix, lease: 2 }),
      await startTestServer({ redis: redis.url, redisPrefix: prefix, lease: 2 }),
    ];
    // Two control connections per node: the race is between connections, on one node or across nodes.
    const ctls = [
      await ControlClient.connect(nodes[0]!.private.port),
      await ControlClient.connect(nodes[0]!.private.port),
      await ControlClient.connect(nodes[1]!.private.port),
      await ControlClient.connect(nodes[1]!.private.port),
    ];
    const pages: Numbered[] = [];
    try {
      const channel = await ctls[0]!.ok("[newchannel]");
      const users: User[] = [];
      for (let i = 0; i < 6; i++) {
        const user = await newUser(ctls[0]!);
        await ctls[0]!.ok(`[join] ${channel}!${user.id}`);
        users.push(user);
        pages.push(await Numbered.login(nodes[i % 2]!, ctls[0]!, user));
      }
      const whispered = users[0]!;

      const shouts = 1_500;
      const whispers = 250;
      for (const [n, ctl] of ctls.entries()) {
        const frames = Array.from({ length: shouts }, (_, i) => `[shout] ${channel}!c${n}-${i}`);
        for (let i = 0; i < whispers; i++) frames.push(`[whisper] ${whispered.id}!w${n}-${i}`);
        ctl.write(encodeFrames(frames));
      }
      for (const ctl of ctls) {
        const replies = await ctl.replies.take(shouts + whispers, "the replies", 30_000);
        expect(replies.filter((r) => r !== "[ok] message sent")).toEqual([]);
      }
      for (const [i, page] of pages.entries()) await page.received(1 + ctls.length * (shouts + (i === 0 ? whispers : 0)));

      // Per browser and source: how many steps were not +1, and the first few as [index, previous, offset].
      const seen: Record<string, { breaks: number; first: [number, number, number][] }> = {};
      const record = (name: string, offsets: number[]) => {
        const found = breaks(offsets);
        seen[name] = { breaks: found.length, first: found.slice(0, 3) };
      };
      for (const [i, page] of pages.entries()) {
        const shouted = page.offsets.get(channel) ?? [];
        expect(shouted).toHaveLength(ctls.length * shouts);
        record(`browser ${i} channel`, shouted);
        if (i === 0) record("browser 0 whispers", page.offsets.get("u") ?? []);
      }
      expect(seen).toEqual(Object.fromEntries(Object.keys(seen).map((k) => [k, { breaks: 0, first: [] }])));
    } finally {
      for (const page of pages) page.browser.close();
      for (const ctl of ctls) ctl.close();
      for (const node of nodes) await node.stop();
    }
  }, 60_000);

  test("a v2 browser cut and resumed again and again while two nodes shout and whisper to it misses nothing", async () => {
    const prefix = uniquePrefix("resume");
    // A window that holds every message of the test: pipelined, they are numbered faster than a page
    // cut every few milliseconds replays them, and what fell out of a smaller window would be a #gap.
    const window = { replayCount: 2_000 };
    const nodes = [
      await startTestServer({ redis: redis.url, redisPrefix: prefix, lease: 2, ...window }),
      await startTestServer({ redis: redis.url, redisPrefix: prefix, lease: 2, ...window }),
    ];
    const ctls = [await ControlClient.connect(nodes[0]!.private.port), await ControlClient.connect(nodes[1]!.private.port)];
    const seen = new Map<string, number[]>();
    let page: V2Resumer | undefined;
    try {
      const user = await newUser(ctls[0]!);
      const channel = await ctls[0]!.ok("[newchannel]");
      await ctls[0]!.ok(`[join] ${channel}!${user.id}`);
      page = await V2Resumer.login(nodes[1]!, user);
      const epoch = page.epoch;
      // Position 0 asks for everything from the first message, should the first cut come before it.
      page.positions.set("u", 0);
      page.positions.set(channel, 0);
      const send = (count: number) =>
        ctls.map((ctl, n) => {
          const frames = Array.from({ length: count }, (_, i) => (i % 2 ? `[shout] ${channel}!s${n}-${i}` : `[whisper] ${user.id}!w${n}-${i}`));
          ctl.write(encodeFrames(frames));
          return ctl.replies.take(count, "replies", 20_000);
        });
      for (let round = 0; round < 40; round++) {
        // Sent while the browser is cut, logging in again and being replayed: the race is in that turn.
        const replies = send(40);
        await Bun.sleep(Math.random() * 3); // a random point to cut at, not a wait for anything
        page.cut();
        await within(page.browser.closed, "the cut");
        page.collect(seen);
        page = await V2Resumer.login(nodes[round % 2]!, user, { epoch, positions: page.positions });
        await Promise.all(replies);
      }
      // The last browser stays: once both sources have reached their last offsets, compare.
      const expected = new Map([["u", 40 * 20 * 2], [channel, 40 * 20 * 2]]);
      await page.until(expected);
      page.collect(seen);
      for (const [source, n] of expected) {
        const got = seen.get(source) ?? [];
        const have = new Set(got);
        const missing = Array.from({ length: n }, (_, i) => i + 1).filter((o) => !have.has(o));
        // Across all the browsers in turn: 1, 2, 3… with no step other than +1.
        const summary = { source, missing: missing.slice(0, 5), twice: got.length - have.size, steps: breaks(got).length };
        expect(summary).toEqual({ source, missing: [], twice: 0, steps: 0 });
      }
    } finally {
      page?.browser.close();
      for (const ctl of ctls) ctl.close();
      for (const node of nodes) await node.stop();
    }
  }, 60_000);

  test("whispers held for an offline user by four control connections on two nodes come back at login in offset order", async () => {
    const prefix = uniquePrefix("held");
    const nodes = [
      await startTestServer({ redis: redis.url, redisPrefix: prefix, lease: 2, queue: 10_000 }),
      await startTestServer({ redis: redis.url, redisPrefix: prefix, lease: 2, queue: 10_000 }),
    ];
    const ctls = [
      await ControlClient.connect(nodes[0]!.private.port),
      await ControlClient.connect(nodes[0]!.private.port),
      await ControlClient.connect(nodes[1]!.private.port),
      await ControlClient.connect(nodes[1]!.private.port),
    ];
    let page: Numbered | undefined;
    try {
      const user = await newUser(ctls[0]!);
      const whispers = 500;
      for (const [n, ctl] of ctls.entries()) {
        ctl.write(encodeFrames(Array.from({ length: whispers }, (_, i) => `[whisper] ${user.id}!w${n}-${i}`)));
      }
      for (const ctl of ctls) {
        const replies = await ctl.replies.take(whispers, "the replies", 30_000);
        expect(replies.filter((r) => r !== "[ok] message queued")).toEqual([]);
      }
      page = await Numbered.login(nodes[1]!, ctls[0]!, user);
      const held = page.offsets.get("u") ?? [];
      expect(held).toHaveLength(ctls.length * whispers + 1);
      const found = breaks(held);
      expect({ breaks: found.length, first: found.slice(0, 3) }).toEqual({ breaks: 0, first: [] });
    } finally {
      page?.browser.close();
      for (const ctl of ctls) ctl.close();
      for (const node of nodes) await node.stop();
    }
  }, 60_000);
});
