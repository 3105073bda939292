// A [killuser] whose user step times out (the user's master held writes for 3 s) but then runs: the
// user is gone. Its channels must not go on listing it: `[members]` and `[count]` of each channel it
// was in drop it, whether the backend's retry is answered "no such user" or not.

import { describe, expect, test } from "bun:test";
import { ShardMap } from "../src/state/shard-map.ts";
import { ControlClient, newUser, startTestServer, type User } from "./helpers.ts";
import { cli, haveRedisCluster, masterOf, useRedisCluster } from "./redis-cluster.ts";

describe.skipIf(!haveRedisCluster)("a killuser whose user step ran late (Redis Cluster)", () => {
  const kit = useRedisCluster();

  test("the killed user leaves every channel it was in", async () => {
    const prefix = `killlate${Date.now()}:`;
    const shards = ShardMap.cluster(prefix);
    const node = await startTestServer({ redis: kit.masters()[0]!.url, redisPrefix: prefix, lease: 1 });
    const ctl = await ControlClient.connect(node.private.port);
    try {
      const channel = await ctl.ok("[newchannel]");
      const home = await masterOf(kit, shards.key(shards.of(Number(channel)), "channels"));
      let user: User = await newUser(ctl);
      while ((await masterOf(kit, shards.key(shards.of(user.id), "users"))) === home) user = await newUser(ctl);
      const other = await newUser(ctl);
      await ctl.ok(`[join] ${channel}!${user.id}`);
      await ctl.ok(`[join] ${channel}!${other.id}`);

      await cli(await masterOf(kit, shards.key(shards.of(user.id), "users")), "CLIENT", "PAUSE", "3000", "WRITE");
      const first = await ctl.call(`[killuser] ${user.id}`);
      await Bun.sleep(4_000);
      const retry = await ctl.call(`[killuser] ${user.id}`);
      await Bun.sleep(1_500);
      const members = (await ctl.ok(`[members] ${channel}`)).split(",").filter(Boolean).map(Number);
      const count = await ctl.ok(`[count] ${channel}`);
      const global = (await ctl.ok("[members] 1")).split(",").filter(Boolean).map(Number);
      console.log(`killuser: ${first}, retried: ${retry}; channel members ${JSON.stringify(members)} count ${count}; in channel 1 ${global.includes(user.id)}`);
      expect(members).toEqual([other.id]);
      expect(count).toBe("1!0");
      expect(global.includes(user.id)).toBe(false);
    } finally {
      ctl.close();
      await node.stop();
    }
  }, 60_000);
});
