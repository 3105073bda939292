// RedisClusterLink and detectCluster against a real Redis Cluster (test/redis-cluster.ts): scripts on
// every master, sharded pub/sub across masters, and a master killed mid-traffic.

import { afterAll, describe, expect, test } from "bun:test";
import { createLog } from "../src/observe/log.ts";
import { detectCluster } from "../src/state/detect-cluster.ts";
import { RedisClusterLink } from "../src/state/redis-cluster-link.ts";
import { BackendUnavailable } from "../src/state/state.ts";
import { within } from "./helpers.ts";
import { cli, haveRedisCluster, useRedisCluster } from "./redis-cluster.ts";
import { haveRedis, useRedis } from "./redis-server.ts";

const INCR = "return redis.call('INCRBY', KEYS[1], ARGV[1])";

describe.skipIf(!haveRedisCluster)("RedisClusterLink", () => {
  const cluster = useRedisCluster();
  const links: RedisClusterLink[] = [];
  afterAll(() => {
    for (const l of links) l.close();
  });
  async function open(): Promise<RedisClusterLink> {
    const l = new RedisClusterLink({ seeds: cluster.seeds(), timeoutMs: 1_000, log: createLog("silent") });
    links.push(l);
    await l.open();
    return l;
  }

  test("detectCluster says yes for a cluster node", async () => {
    expect(await detectCluster(cluster.masters()[0]!.url)).toBe(true);
  });

  test("a script runs on every master, by slot, and keeps order per key", async () => {
    const l = await open();
    const keys = await Promise.all(cluster.masters().map((m) => keyOn(m.port, "s")));
    // Pipelined, not awaited one by one: INCRBY 1..10 on one key answers the running sums only in call order.
    const steps = Array.from({ length: 10 }, (_, i) => i + 1);
    const replies = await Promise.all(keys.flatMap((k) => steps.map((n) => l.script(INCR, [k], [n]))));
    const sums = steps.map((n) => (n * (n + 1)) / 2);
    expect(replies.map(Number)).toEqual([...sums, ...sums, ...sums]);
    for (const [i, m] of cluster.masters().entries()) expect(await cli(m.port, "GET", keys[i]!)).toBe("55");
    expect(l.healthy).toBe(true);
  });

  test("CROSSSLOT script keys are a server error, not an outage", async () => {
    const l = await open();
    const error = await l.script(INCR, ["a", "b"], [1]).catch((e: Error) => e);
    expect(String(error)).toContain("CROSSSLOT");
    expect(error).not.toBeInstanceOf(BackendUnavailable);
  });

  test("sharded pub/sub delivers on every master's channels", async () => {
    const sub = await open();
    const pub = await open();
    const channels = await Promise.all(cluster.masters().map((m) => keyOn(m.port, "ch")));
    const heard: string[] = [];
    const all = Promise.withResolvers<void>();
    for (const ch of channels) {
      await sub.ssubscribe(ch, (m) => {
        heard.push(`${ch}=${m}`);
        if (heard.length === channels.length) all.resolve();
      });
    }
    for (const ch of channels) expect(await pub.spublish(ch, "hi")).toBe(1);
    await within(all.promise, "a message on each master's channel");
    expect(heard.sort()).toEqual(channels.map((c) => `${c}=hi`).sort());
  });

  test("classic pub/sub reaches a subscriber whatever node it listens on", async () => {
    const sub = await open();
    const pub = await open();
    const got = Promise.withResolvers<string>();
    await sub.subscribe("classic-chan", (m) => got.resolve(m));
    expect(await pub.call("PUBLISH", ["classic-chan", "hello"])).toBeDefined();
    expect(await within(got.promise, "a classic message")).toBe("hello");
  });

  test("a master killed mid-traffic: fail fast as BackendUnavailable, then recover and deliver again", async () => {
    const l = await open();
    const sub = await open();
    const reconnected = Promise.withResolvers<void>();
    l.onReconnect(() => reconnected.resolve());
    const victim = cluster.masters()[2]!;
    const key = await keyOn(victim.port, "f");
    const channel = await keyOn(victim.port, "fc");
    const heard: string[] = [];
    let waiter = Promise.withResolvers<void>();
    const resubscribed = Promise.withResolvers<void>();
    await sub.ssubscribe(channel, (m) => {
      heard.push(m);
      waiter.resolve();
    }, () => resubscribed.resolve());
    await l.spublish(channel, "before");
    await within(waiter.promise, "the message before the failover");

    // Traffic to the victim's slot while it dies: every call settles, none hangs past the timeout.
    let stop = false;
    const outcomes: string[] = [];
    const traffic = (async () => {
      while (!stop) {
        const started = performance.now();
        const outcome = await l.script(INCR, [key], [1]).then(
          () => "ok",
          (e: Error) => (e instanceof BackendUnavailable ? "unavailable" : `other: ${e.message}`),
        );
        expect(performance.now() - started).toBeLessThan(3_000);
        outcomes.push(outcome);
        if (outcome !== "ok") await Bun.sleep(20);
      }
    })();
    await within(untilCount(outcomes, 5), "some traffic before the kill");
    await cluster.failover(2);
    await within(untilLastOk(outcomes), "calls to succeed again after the failover", 20_000);
    stop = true;
    await traffic;
    expect(outcomes).toContain("unavailable");
    expect(outcomes.filter((o) => o.startsWith("other"))).toEqual([]);
    expect(l.healthy).toBe(true);
    await within(reconnected.promise, "onReconnect after the promoted master joined");

    await within(resubscribed.promise, "the sharded subscription to be made again", 20_000);
    waiter = Promise.withResolvers<void>();
    await within(untilDelivered(l, channel), "a subscriber on the promoted master", 10_000);
    await within(waiter.promise, "the message after the failover");
    expect(heard).toContain("after");
  }, 90_000);
});

describe.skipIf(!haveRedis)("detectCluster on a single Redis", () => {
  const redis = useRedis();
  test("says no, and an unreachable Redis is BackendUnavailable", async () => {
    expect(await detectCluster(redis.url)).toBe(false);
    const error = await detectCluster("redis://127.0.0.1:1", 500).catch((e: Error) => e);
    expect(error).toBeInstanceOf(BackendUnavailable);
  });
});

/** A key (or channel) name whose slot the node at `port` serves. */
async function keyOn(port: number, prefix: string): Promise<string> {
  const me = (await cli(port, "CLUSTER", "NODES")).split("\n").find((l) => l.includes("myself"))!;
  const ranges = me.split(" ").slice(8).map((r) => r.split("-").map(Number));
  for (let i = 0; ; i++) {
    const key = `${prefix}:${i}`;
    const slot = Number(await cli(port, "CLUSTER", "KEYSLOT", key));
    if (ranges.some(([lo, hi]) => slot >= lo! && slot <= (hi ?? lo!))) return key;
  }
}

async function untilCount(list: unknown[], n: number): Promise<void> {
  while (list.length < n) await Bun.sleep(10);
}

async function untilLastOk(outcomes: string[]): Promise<void> {
  const from = outcomes.length;
  while (!outcomes.slice(from).includes("ok")) await Bun.sleep(20);
}

// Publishes "after" until the promoted master reports a subscriber heard it.
async function untilDelivered(l: RedisClusterLink, channel: string): Promise<void> {
  while ((await l.spublish(channel, "after").catch(() => 0)) < 1) await Bun.sleep(50);
}
