// Issue 14: a Redis that went back in time is a data loss. Redis restarted from a dump taken before
// some acknowledged writes (RDB persistence after a crash, a failover to a lagging replica), or with
// only its generation key deleted: the data under the prefix can no longer be trusted, so every node
// drops it, closes every browser 4004, refuses the old tokens, logs it once and tells its listeners.

import { afterAll, afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Browser, ControlClient, loggedIn, newUser, within, type User } from "./helpers.ts";
import { haveRedis, link, useRedis, uniquePrefix } from "./redis-server.ts";
import { callWhenUp, startRedisNode, type RedisNode } from "./redis-node.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-rollback-"));
// RDB only, no automatic saves: SAVE writes dump.rdb, and a restart (kill -9) loads it.
const redis = useRedis({ args: ["--dir", dir] });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Node extends RedisNode {
  listener: ControlClient;
}

const nodes: Node[] = [];
afterEach(async () => {
  for (const n of nodes.splice(0)) {
    n.ctl.close();
    n.listener.close();
    await n.server.stop();
  }
});

async function node(prefix: string): Promise<Node> {
  const started = await startRedisNode(redis, prefix);
  const n = { ...started, listener: await ControlClient.connect(started.server.private.port) };
  nodes.push(n);
  expect(await n.listener.call("[listen]")).toStartWith("[ok]");
  return n;
}

async function redisCall(command: string, args: string[]): Promise<unknown> {
  const l = await link(redis);
  try {
    return await l.call(command, args);
  } finally {
    l.close();
  }
}

/** Waits for the `[epoch] …` event naming another epoch than `old`. */
async function newEpochEvent(n: Node, old: string): Promise<string> {
  return within(
    (async () => {
      for (;;) {
        const line = await n.listener.replies.next("an event", 15_000);
        if (line.startsWith("[epoch] ") && line !== `[epoch] ${old}`) return line.slice("[epoch] ".length);
      }
    })(),
    "the [epoch] event",
    15_000,
  );
}

/** How a browser logging in with `token` is closed (or "open" after 1 s). */
async function loginOutcome(url: string, token: string): Promise<number | "open"> {
  const page = await Browser.open(url);
  page.send(token);
  const closed = await Promise.race([page.closed, Bun.sleep(1_000).then(() => undefined)]);
  page.close();
  return closed?.code ?? "open";
}

/** The state epoch a node reports in [stats]. */
async function epochOf(n: Node): Promise<string> {
  const stats = await n.ctl.ok("[stats]");
  const epoch = /epoch[=:]\s*([^\s,!]+)/.exec(stats)?.[1];
  if (!epoch) throw new Error(`no epoch in [stats]: ${stats}`);
  return epoch;
}

/** Lines naming a broken lineage, once both nodes have had a few more periodic checks. */
async function lineageErrors(n: Node): Promise<string[]> {
  return n.errors.filter((line) => /lost webtalk's data|went back in time/.test(line));
}

async function expectLineageBroken(a: Node, b: Node, users: [User, Browser, Node][], oldEpoch: string, cause: RegExp, detector: Node): Promise<void> {
  // Every old browser is closed 4004: its user is gone with the untrusted data.
  for (const [, browser] of users) expect((await browser.closedWithin("an old browser to be closed")).code).toBe(4004);
  // Each node's listeners hear a new epoch, the same on both.
  const epochs = [await newEpochEvent(a, oldEpoch), await newEpochEvent(b, oldEpoch)];
  expect(epochs[0]).toBe(epochs[1]!);
  // Old tokens are refused on every node.
  for (const [user] of users) {
    for (const n of [a, b]) expect(await loginOutcome(n.server.publicUrl, user.token)).toBe(4001);
  }
  // Channel 1 exists again, and new users work.
  for (const n of [a, b]) {
    expect(await callWhenUp(n.ctl, "[shout] 1!after")).toStartWith("[ok]");
    const fresh = await newUser(n.ctl);
    const [page] = await loggedIn(n.server, n.ctl, fresh);
    page.close();
  }
  await Bun.sleep(1_500); // a few more renewals: still one line each
  for (const n of [a, b]) expect(await lineageErrors(n)).toHaveLength(1);
  expect((await lineageErrors(detector))[0]).toMatch(cause);
}

test.skipIf(!haveRedis)("deleting only the generation key is a data loss: every browser closed 4004, old tokens refused, one line, [epoch] NEW", async () => {
  const prefix = uniquePrefix("gendel");
  const a = await node(prefix);
  const b = await node(prefix);
  const oldEpoch = await epochOf(a);
  const [browserA, userA] = await loggedIn(a.server, a.ctl);
  const [browserB, userB] = await loggedIn(b.server, b.ctl);

  expect(await redisCall("DEL", [`${prefix}generation`])).toBe(1);

  await expectLineageBroken(
    a,
    b,
    [
      [userA, browserA, a],
      [userB, browserB, b],
    ],
    oldEpoch,
    /lost webtalk's data/,
    a,
  );
}, 60_000);

test.skipIf(!haveRedis)("a Redis restarted from a dump older than a node's own writes: detected, wiped, every browser 4004, one line per node", async () => {
  const prefix = uniquePrefix("seqback");
  const a = await node(prefix);
  const b = await node(prefix);
  const oldEpoch = await epochOf(a);
  const [browserA, userA] = await loggedIn(a.server, a.ctl);
  const [browserB, userB] = await loggedIn(b.server, b.ctl);
  expect(await redisCall("SAVE", [])).toBe("OK");
  // Acknowledged writes of node A that the dump does not hold.
  const board = await a.ctl.ok("[newchannel]");
  await a.ctl.ok(`[join] ${board}!${userB.id}`);
  await a.ctl.ok(`[killuser] ${userA.id}`);
  expect((await browserA.closedWithin("the killed user's browser")).code).toBe(4004);
  const [browserA2, userA2] = await loggedIn(a.server, a.ctl);

  await redis.stop();
  await redis.restart();

  await expectLineageBroken(
    a,
    b,
    [
      [userA2, browserA2, a],
      [userB, browserB, b],
    ],
    oldEpoch,
    /went back in time \(seq \d+ < seen \d+\)/,
    a,
  );
  // The killed user stays refused too.
  expect(await loginOutcome(b.server.publicUrl, userA.token)).toBe(4001);
}, 60_000);
