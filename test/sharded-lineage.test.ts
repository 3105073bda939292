// The lineage over a Redis Cluster's 64 shards (src/state/lineage.ts with ShardMap.cluster), against a
// real 3-master cluster (test/redis-cluster.ts): established in every shard on every master, a guarded
// change in any shard, a shard that went back in time caught, the wipe reaching every master, and a
// failover that kept the data not mistaken for a loss.

import { afterAll, describe, expect, test } from "bun:test";
import { createLog } from "../src/observe/log.ts";
import { Lineage } from "../src/state/lineage.ts";
import { RedisClusterLink } from "../src/state/redis-cluster-link.ts";
import { keySlot } from "../src/state/shard-tags.ts";
import { ShardMap } from "../src/state/shard-map.ts";
import { BackendUnavailable, GLOBAL_CHANNEL } from "../src/state/state.ts";
import { cli, haveRedisCluster, useRedisCluster } from "./redis-cluster.ts";

const INCR = Lineage.guarded("return redis.call('INCR', KEYS[1])");

describe.skipIf(!haveRedisCluster)("Lineage over a Redis Cluster's shards", () => {
  const cluster = useRedisCluster();
  const links: RedisClusterLink[] = [];
  afterAll(() => {
    for (const l of links) l.close();
  });
  let prefixes = 0;
  async function open(prefix: string, node: string): Promise<{ lineage: Lineage; link: RedisClusterLink; shards: ShardMap }> {
    const link = new RedisClusterLink({ seeds: cluster.seeds(), timeoutMs: 1_000, log: createLog("silent") });
    links.push(link);
    await link.open();
    const shards = ShardMap.cluster(prefix);
    const lineage = new Lineage(link, shards, node);
    lineage.adopt(await lineage.establishFirst());
    await lineage.listen();
    return { lineage, link, shards };
  }
  const fresh = () => `lin${++prefixes}-${Date.now()}:`;
  /** Which master serves a key (its port), from each master's own view of its slots. */
  async function masterOf(key: string): Promise<number> {
    const slot = keySlot(key);
    for (const m of cluster.masters()) {
      const me = (await cli(m.port, "CLUSTER", "NODES")).split("\n").find((l) => l.includes("myself"));
      const ranges = (me ?? "").split(" ").slice(8).map((r) => r.split("-").map(Number));
      if (ranges.some(([lo, hi]) => slot >= lo! && slot <= (hi ?? lo!))) return m.port;
    }
    throw new Error(`no master serves slot ${slot}`);
  }
  async function add(lineage: Lineage, shards: ShardMap, shard: number): Promise<number> {
    return Number(await lineage.run(INCR, [shards.key(shard, "heldcount")], [], shard));
  }

  test("established in all 64 shards, on every master, one generation; channel 1 in its own shard only", async () => {
    const prefix = fresh();
    const { lineage, shards } = await open(prefix, "node-a");
    expect(lineage.generation).toMatch(/^\d{16}$/);
    const owners = new Set<number>();
    for (let k = 0; k < shards.count; k++) {
      const key = shards.key(k, "generation");
      const port = await masterOf(key);
      owners.add(port);
      expect(await cli(port, "GET", key)).toBe(lineage.generation);
      const channels = await cli(port, "SMEMBERS", shards.key(k, "channels"));
      expect(channels).toBe(k === shards.of(GLOBAL_CHANNEL) ? String(GLOBAL_CHANNEL) : "");
    }
    expect(owners.size).toBe(3);
    expect(await lineage.read()).toEqual({ kind: "same" });
    // A second node starting on the same prefix reads back the same generation.
    const other = await open(prefix, "node-b");
    expect(other.lineage.generation).toBe(lineage.generation);
  });

  test("a guarded change runs in any shard; a shard whose writes were lost is caught and named, and refuses", async () => {
    const prefix = fresh();
    const { lineage, shards, link } = await open(prefix, "node-a");
    const other = await open(prefix, "node-b");
    for (let k = 0; k < shards.count; k++) expect(await add(lineage, shards, k)).toBe(1);
    expect(await lineage.read()).toEqual({ kind: "same" });
    // As a failover to a replica that had not yet received node-a's last write to shard 37.
    await link.call("HINCRBY", [shards.key(37, "writers"), "node-a", -1]);
    for (let k = 0; k < 5; k++) await add(other.lineage, shards, 37);
    expect(await other.lineage.read()).toEqual({ kind: "same" });
    const found = await lineage.read();
    expect(found.kind === "broken" ? found.cause : found.kind).toMatch(/^Redis went back in time .* \(shard 37 of 64\)$/);
    await expect(add(lineage, shards, 37)).rejects.toBeInstanceOf(BackendUnavailable);
    // Shards that kept every write still accept this node's changes until the repair.
    expect(await add(lineage, shards, 36)).toBe(2);
  });

  test("the repair discards every shard on every master, leaves other prefixes alone, and a new generation is adopted by all", async () => {
    const prefix = fresh();
    const { lineage, shards, link } = await open(prefix, "node-a");
    const other = await open(prefix, "node-b");
    const neighbour = await open(`${prefix}x:`, "node-c");
    for (let k = 0; k < shards.count; k++) await add(lineage, shards, k);
    await add(neighbour.lineage, neighbour.shards, 5);
    await link.call("DEL", [shards.key(12, "generation")]);
    const found = await lineage.read();
    expect(found.kind === "broken" ? found.cause : found.kind).toMatch(/^Redis lost webtalk's data .* \(shard 12 of 64\)$/);
    const before = lineage.generation;
    const settled = await lineage.settle(found);
    expect(Number(settled.generation)).toBeGreaterThan(Number(before));
    expect(settled.discarded).toBeGreaterThanOrEqual(64);
    // Every shard holds the new generation and nothing else of the old data.
    for (let k = 0; k < shards.count; k++) {
      const port = await masterOf(shards.key(k, "generation"));
      expect(await cli(port, "GET", shards.key(k, "generation"))).toBe(settled.generation);
      expect(await cli(port, "GET", shards.key(k, "heldcount"))).toBe("");
    }
    expect(await other.lineage.read()).toMatchObject({ kind: "newer", generation: settled.generation });
    lineage.adopt(settled.generation);
    other.lineage.adopt(settled.generation);
    expect(await lineage.read()).toEqual({ kind: "same" });
    expect(await add(other.lineage, shards, 12)).toBe(1);
    // The deployment under a longer prefix kept its data and its lineage.
    expect(await neighbour.lineage.read()).toEqual({ kind: "same" });
    expect(await add(neighbour.lineage, neighbour.shards, 5)).toBe(2);
  }, 60_000);

  test("a master killed and failed over with its data kept is not a loss: the lineage stays the same", async () => {
    const prefix = fresh();
    const { lineage, shards } = await open(prefix, "node-a");
    for (let k = 0; k < shards.count; k++) await add(lineage, shards, k);
    // Replication is asynchronous: wait until every replica has what its master has before the kill.
    for (const m of cluster.masters()) await cli(m.port, "WAIT", "1", "2000");
    await cluster.failover(1);
    let verdict = await lineage.read().catch((error: Error) => error);
    for (let i = 0; i < 50 && verdict instanceof Error; i++) {
      await Bun.sleep(100);
      verdict = await lineage.read().catch((error: Error) => error);
    }
    expect(verdict).toEqual({ kind: "same" });
    for (let k = 0; k < shards.count; k++) expect(await add(lineage, shards, k)).toBe(2);
  }, 60_000);
});
