// Slots and shard tags (src/state/shard-tags.ts) against the real thing: `CLUSTER KEYSLOT` of a real
// Redis Cluster (test/redis-cluster.ts) for random keys, and the masters that serve each shard's tag.

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { keySlot, shardTags, SLOTS } from "../src/state/shard-tags.ts";
import { cli, haveRedisCluster, useRedisCluster } from "./redis-cluster.ts";

describe("keySlot", () => {
  test("the values the Redis Cluster specification gives", () => {
    // CRC16-XMODEM of "123456789" is 0x31C3 (the spec's check value).
    expect(keySlot("123456789")).toBe(0x31c3 % SLOTS);
    expect(keySlot("{user1000}.following")).toBe(keySlot("{user1000}.followers"));
    // An empty tag does not count: the whole key is hashed.
    expect(keySlot("foo{}{bar}")).not.toBe(keySlot("bar"));
    expect(keySlot("foo{{bar}}zap")).toBe(keySlot("{bar"));
  });

  test("a slot is in 0..16383 for any key", () => {
    fc.assert(fc.property(fc.string(), (key) => keySlot(key) >= 0 && keySlot(key) < SLOTS));
  });

  test("64 shard tags: one in each 256-slot range, the same on every call", () => {
    const tags = shardTags("webtalk:", 64);
    expect(tags).toEqual(shardTags("webtalk:", 64));
    tags.forEach((tag, k) => expect(Math.floor(keySlot(tag) / 256)).toBe(k));
    expect(new Set(tags).size).toBe(64);
  });
});

describe.skipIf(!haveRedisCluster)("keySlot against a real Redis Cluster", () => {
  const cluster = useRedisCluster();

  test("CLUSTER KEYSLOT agrees on 200 random keys, hash tags and UTF-8 included", async () => {
    const port = cluster.masters()[0]!.port;
    const keys = fc.sample(fc.oneof(fc.string({ minLength: 1 }), fc.string({ unit: "grapheme", minLength: 1 }), fc.constantFrom("a{b}c", "{}x", "x{y")), 200);
    for (const key of keys) expect(`${key} ${keySlot(key)}`).toBe(`${key} ${await cli(port, "CLUSTER", "KEYSLOT", key)}`);
  });

  test("64 shard tags spread over the 3 masters: 21 or 22 on each", async () => {
    const tags = shardTags("webtalk:", 64);
    const owners = new Map<number, number>();
    const nodes = await cli(cluster.masters()[0]!.port, "CLUSTER", "NODES");
    const ranges = nodes
      .split("\n")
      .filter((line) => /\bmaster\b/.test(line))
      .map((line) => ({ port: Number(/:(\d+)@/.exec(line)![1]), ranges: line.split(" ").slice(8).map((r) => r.split("-").map(Number)) }));
    for (const tag of tags) {
      const slot = keySlot(tag);
      const owner = ranges.find((m) => m.ranges.some(([lo, hi]) => slot >= lo! && slot <= (hi ?? lo!)))!;
      owners.set(owner.port, (owners.get(owner.port) ?? 0) + 1);
    }
    expect([...owners.values()].sort()).toEqual([21, 21, 22]);
  });
});
