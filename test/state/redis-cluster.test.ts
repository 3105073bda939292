// The sharded Redis Cluster state (src/state/redis-cluster-state.ts) against the shared State contract,
// durability included (a "restart" is a new state on the same prefix), on a real 3-master Redis
// Cluster (test/redis-cluster.ts); then what only a cluster can show: records on every master, and the
// two steps of a membership change interleaved as two nodes would.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createLog } from "../../src/observe/log.ts";
import { RedisClusterLink } from "../../src/state/redis-cluster-link.ts";
import { RedisClusterState } from "../../src/state/redis-cluster-state.ts";
import { GLOBAL_CHANNEL, type State } from "../../src/state/state.ts";
import { cli, haveRedisCluster, useRedisCluster } from "../redis-cluster.ts";
import { describeStateContract } from "./contract.ts";

const cluster = useRedisCluster();
let link: RedisClusterLink;
beforeAll(async () => {
  if (!haveRedisCluster) return;
  link = new RedisClusterLink({ seeds: cluster.seeds(), timeoutMs: 2_000, log: createLog("silent") });
  await link.open();
});
afterAll(() => link?.close());

let count = 0;
const prefixes = new WeakMap<State, string>();
if (haveRedisCluster) {
  describeStateContract("redis cluster", {
    async open() {
      const prefix = `state${++count}-${Date.now()}:`;
      const state = await RedisClusterState.open(link, prefix);
      prefixes.set(state, prefix);
      return state;
    },
    async reopen(state) {
      const prefix = prefixes.get(state)!;
      const again = await RedisClusterState.open(link, prefix);
      prefixes.set(again, prefix);
      return again;
    },
  });
}

describe.skipIf(!haveRedisCluster)("Redis Cluster state: what only a cluster shows", () => {
  test("users and channels spread over every master, each in the shard its ID names", async () => {
    const prefix = `spread-${Date.now()}:`;
    const state = await RedisClusterState.open(link, prefix);
    const users = await Promise.all(Array.from({ length: 64 }, (_, i) => state.createUser(`s${i}`)));
    const channels = await Promise.all(Array.from({ length: 64 }, () => state.createChannel()));
    expect(new Set(users.map((u) => state.shards.of(u))).size).toBe(64);
    expect(new Set(channels.map((c) => state.shards.of(c))).size).toBe(64);
    for (const u of users) expect(await state.userSalt(u)).toStartWith("s");
    // Every master holds some of the users' records.
    let holding = 0;
    for (const m of cluster.masters()) if (Number(await cli(m.port, "DBSIZE")) > 64) holding++;
    expect(holding).toBe(3);
    for (const [i, c] of channels.entries()) expect(await state.join(c, users[i]!)).toBe("added");
    for (const [i, u] of users.entries()) expect(await state.channelsOf(u)).toEqual([GLOBAL_CHANNEL, channels[i]!].sort((a, b) => a - b));
    expect(await state.counts()).toMatchObject({ users: 64, channels: 65 });
  });

  test("two nodes' joins and leaves of one user and channel, steps interleaved any way, end as the last user step says", async () => {
    const prefix = `race-${Date.now()}:`;
    // Two connections, as two nodes have: each shard sees their steps in whatever order they arrive.
    const other = new RedisClusterLink({ seeds: cluster.seeds(), timeoutMs: 2_000, log: createLog("silent") });
    await other.open();
    const a = await RedisClusterState.open(link, prefix, "node-a");
    const b = await RedisClusterState.open(other, prefix, "node-b");
    const user = await a.createUser("s");
    const channel = await a.createChannel();
    for (let round = 0; round < 40; round++) {
      const ops = [a.join(channel, user), b.leave(channel, user), a.leave(channel, user), b.join(channel, user)];
      await Promise.all(ops);
      const member = (await a.members(channel, 0, 10))!.includes(user);
      const listed = (await a.channelsOf(user)).includes(channel);
      // Both shards agree, whichever order the steps ran in.
      expect(member).toBe(listed);
    }
    other.close();
  });
});
