// Several browsers per user across a cluster (--sessions, issue 17): one user online on two nodes at
// once, on a real redis-server. Both tabs receive; presence counts the user once; the routing counts
// (chnodes:C) name both nodes and go with the last tab; kick and kill reach every node.

import { describe, expect, test } from "bun:test";
import type { Config } from "../src/config/schema.ts";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, loggedIn, startTestServer, type User } from "./helpers.ts";
import { haveRedis, keyIn, redisCliOn, uniquePrefix, useRedis } from "./redis-server.ts";

const redis = useRedis();

const redisCli = (...args: string[]) => redisCliOn(redis, ...args);

/** Two nodes on one Redis under a fresh prefix, with a control connection to each. */
async function twoNodes(overrides: Partial<Config> = {}) {
  const prefix = uniquePrefix("sessions");
  const nodes: Webtalk[] = [];
  const ctls: ControlClient[] = [];
  for (let i = 0; i < 2; i++) {
    nodes.push(await startTestServer({ redis: redis.url, redisPrefix: prefix, lease: 1, sessions: 3, ...overrides }));
    ctls.push(await ControlClient.connect(nodes[i]!.private.port));
  }
  return {
    prefix,
    nodes: nodes as [Webtalk, Webtalk],
    ctls: ctls as [ControlClient, ControlClient],
    async stop() {
      for (const c of ctls) c.close();
      for (const n of nodes) await n.stop();
    },
  };
}

/** This node's own `sessions=` (its part of [stats] is taken fresh; the others' come with their lease). */
async function localSessions(server: Webtalk): Promise<number> {
  return server.metrics.sessions;
}

/** Opens a tab of `user` on `server` and returns once that node counts `sessions` browsers. */
async function tab(server: Webtalk, ctl: ControlClient, user: User, sessions: number): Promise<Browser> {
  const browser = await Browser.open(server.publicUrl);
  browser.send(user.token);
  for (let i = 0; i < 5_000; i++) {
    await ctl.ok("[ping]");
    if ((await localSessions(server)) === sessions) return browser;
  }
  throw new Error(`node never counted ${sessions} sessions`);
}

/** The next `[online]`/`[offline]` event about `user` on a listening connection, skipping others. */
async function presenceEvent(c: ControlClient, user: number): Promise<string> {
  for (;;) {
    const frame = await c.replies.next(`an event about ${user}`);
    if (frame === `[online] ${user}` || frame === `[offline] ${user}`) return frame;
  }
}

/** chnodes:C as {node: count}. */
function channelNodes(prefix: string, channel: string): Record<string, string> {
  const flat = redisCli("HGETALL", keyIn(prefix, `chnodes:${channel}`, Number(channel))).split("\n").filter(Boolean);
  const out: Record<string, string> = {};
  for (let i = 0; i < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

describe.skipIf(!haveRedis)("--sessions 3 in a cluster", () => {
  test("two tabs of one user on two nodes both receive whispers and shouts; the user counts once", async () => {
    const c = await twoNodes();
    const [a, b] = c.nodes;
    const [ca, cb] = c.ctls;
    try {
      const channel = await ca.ok("[newchannel]");
      const [onA, user] = await loggedIn(a, ca);
      await ca.ok(`[join] ${channel}!${user.id}`);
      const onB = await tab(b, cb, user, 1);
      expect(redisCli("HGET", keyIn(c.prefix, "online", user.id), String(user.id)).split(",")).toHaveLength(2);
      // Both nodes count the user once in the channel's routing, and it counts once in presence.
      expect(Object.values(channelNodes(c.prefix, channel))).toEqual(["1", "1"]);
      expect(await cb.call(`[online] ${user.id}`)).toBe("[ok] 1");
      expect(await ca.call(`[count] ${channel}`)).toBe("[ok] 1!1");
      expect(await cb.call(`[whisper] ${user.id}!w1`)).toBe("[ok] message sent");
      await ca.ok(`[shout] ${channel}!s1`);
      await cb.ok(`[whisper] ${user.id}!w2`);
      for (const browser of [onA, onB]) expect(await browser.messages.take(3)).toEqual(["w1", "s1", "w2"]);
      // A join after both logged in reaches both nodes too.
      const second = await cb.ok("[newchannel]");
      await cb.ok(`[join] ${second}!${user.id}`);
      await ca.ok(`[shout] ${second}!s2`);
      for (const browser of [onA, onB]) expect(await browser.messages.next()).toBe("s2");

      // The tab on A goes: B alone still receives, A's routes go, whispers are still delivered.
      onA.close();
      await onA.closedWithin();
      for (let i = 0; i < 5_000 && Object.keys(channelNodes(c.prefix, channel)).length !== 1; i++) await ca.ok("[ping]");
      expect(Object.keys(channelNodes(c.prefix, channel))).toHaveLength(1);
      expect(await ca.call(`[whisper] ${user.id}!w3`)).toBe("[ok] message sent");
      await ca.ok(`[shout] ${channel}!s3`);
      expect(await onB.messages.take(2)).toEqual(["w3", "s3"]);
      onB.close();
      await onB.closedWithin();
      for (let i = 0; i < 5_000 && redisCli("HEXISTS", keyIn(c.prefix, "online", user.id), String(user.id)) !== "0"; i++) await ca.ok("[ping]");
      expect(await ca.call(`[online] ${user.id}`)).toBe("[ok] 0");
      expect(channelNodes(c.prefix, channel)).toEqual({});
      expect(await ca.call(`[whisper] ${user.id}!later`)).toBe("[ok] message queued");
    } finally {
      await c.stop();
    }
  });

  test("a listener hears one [online] for the user's first tab and one [offline] for its last, across nodes", async () => {
    const c = await twoNodes();
    const [a, b] = c.nodes;
    const [ca, cb] = c.ctls;
    const events = await ControlClient.connect(a.private.port);
    try {
      expect(await events.call("[listen]")).toBe("[ok] listening");
      await events.replies.next("the epoch event");
      const [onA, user] = await loggedIn(a, ca);
      expect(await presenceEvent(events, user.id)).toBe(`[online] ${user.id}`);
      const onB = await tab(b, cb, user, 1);
      const alsoA = await tab(a, ca, user, 2);
      onA.close();
      await onA.closedWithin();
      alsoA.close();
      await alsoA.closedWithin();
      // A has no tab of the user left, B still has one: the user is online, and nobody said otherwise.
      for (let i = 0; i < 5_000 && a.metrics.sessions !== 0; i++) await ca.ok("[ping]");
      expect(await ca.call(`[online] ${user.id}`)).toBe("[ok] 1");
      onB.close();
      await onB.closedWithin();
      expect(await presenceEvent(events, user.id)).toBe(`[offline] ${user.id}`);
      expect(await ca.call(`[online] ${user.id}`)).toBe("[ok] 0");
    } finally {
      events.close();
      await c.stop();
    }
  });

  test("tabs logging in at once on one node while whispers flow: the tab already there misses none", async () => {
    const c = await twoNodes();
    const [a] = c.nodes;
    const [ca, cb] = c.ctls;
    try {
      const [first, user] = await loggedIn(a, ca);
      const count = 300;
      const sent = (async () => {
        for (let i = 0; i < count; i++) await cb.ok(`[whisper] ${user.id}!m${i}`);
      })();
      const tabs = await Promise.all(Array.from({ length: 2 }, () => Browser.open(a.publicUrl)));
      for (const browser of tabs) browser.send(user.token);
      await sent;
      await cb.ok(`[whisper] ${user.id}!end`);
      const seen: string[] = [];
      for (let m = await first.messages.next(); m !== "end"; m = await first.messages.next()) seen.push(m);
      expect(seen).toEqual(Array.from({ length: count }, (_, i) => `m${i}`));
      for (const browser of tabs) browser.close();
    } finally {
      await c.stop();
    }
  });

  test("--duplicate reject: a fourth tab on a node is refused with 4002 while whispers flow, and the three miss none", async () => {
    const c = await twoNodes({ duplicate: "reject" });
    const [a] = c.nodes;
    const [ca, cb] = c.ctls;
    try {
      const [first, user] = await loggedIn(a, ca);
      const others = [await tab(a, ca, user, 2), await tab(a, ca, user, 3)];
      const count = 300;
      const sent = (async () => {
        for (let i = 0; i < count; i++) await cb.ok(`[whisper] ${user.id}!m${i}`);
      })();
      const fourth = await Browser.open(a.publicUrl);
      fourth.send(user.token);
      expect(await fourth.closedWithin()).toEqual({ code: 4002, reason: "session limit: too many sessions" });
      await sent;
      await cb.ok(`[whisper] ${user.id}!end`);
      for (const browser of [first, ...others]) {
        const seen: string[] = [];
        for (let m = await browser.messages.next(); m !== "end"; m = await browser.messages.next()) seen.push(m);
        expect(seen).toEqual(Array.from({ length: count }, (_, i) => `m${i}`));
      }
      expect(redisCli("HGET", keyIn(c.prefix, "online", user.id), String(user.id))).not.toContain(",");
      for (const browser of [first, ...others]) browser.close();
    } finally {
      await c.stop();
    }
  });

  test("[kick] and [killuser] close the user's tabs on every node", async () => {
    const c = await twoNodes();
    const [a, b] = c.nodes;
    const [ca, cb] = c.ctls;
    try {
      const [onA, user] = await loggedIn(a, ca);
      const onB = await tab(b, cb, user, 1);
      const alsoB = await tab(b, cb, user, 2);
      expect(await ca.call(`[kick] ${user.id}`)).toBe("[ok] user kicked");
      for (const browser of [onA, onB, alsoB]) expect((await browser.closedWithin()).code).toBe(4005);

      const [againA, other] = await loggedIn(a, ca);
      const againB = await tab(b, cb, other, 1);
      const channel = await ca.ok("[newchannel]");
      await ca.ok(`[join] ${channel}!${other.id}`);
      expect(Object.values(channelNodes(c.prefix, channel))).toEqual(["1", "1"]);
      expect(await cb.call(`[killuser] ${other.id}`)).toBe("[ok] user killed");
      for (const browser of [againA, againB]) expect((await browser.closedWithin()).code).toBe(4004);
      // The killed user's routes went with it, on both nodes.
      expect(channelNodes(c.prefix, channel)).toEqual({});
    } finally {
      await c.stop();
    }
  });
});
