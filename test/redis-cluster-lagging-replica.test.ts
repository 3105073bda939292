// A master fails over to a replica that never received its last writes (the replica was stopped and
// its link cut while a backend stored a value and held a whisper, both answered [ok]; then the master
// was killed). The lineage must notice: the data is discarded and the backends hear a new epoch,
// rather than going on with a value and a held whisper silently gone.

import { describe, expect, test } from "bun:test";
import { ShardMap } from "../src/state/shard-map.ts";
import { keySlot } from "../src/state/shard-tags.ts";
import { ControlClient, newUser, startTestServer } from "./helpers.ts";
import { cli, haveRedisCluster, masterOf, useRedisCluster } from "./redis-cluster.ts";

describe.skipIf(!haveRedisCluster)("a failover to a replica that missed the last writes (Redis Cluster)", () => {
  const kit = useRedisCluster();

  test("the lineage catches the loss: a new epoch, not a store and a held whisper silently gone", async () => {
    const prefix = `lag${Date.now()}:`;
    const shards = ShardMap.cluster(prefix);
    const node = await startTestServer({ redis: kit.masters()[0]!.url, redisPrefix: prefix, lease: 1 });
    const ctl = await ControlClient.connect(node.private.port);
    const listener = await ControlClient.connect(node.private.port);
    try {
      expect(await listener.call("[listen]")).toBe("[ok] listening");
      const first = await listener.replies.next("the first epoch");
      // A master that is not the seed, a user and a key whose shards it serves.
      const index = 1;
      const doomed = kit.masters()[index]!.port;
      let user = await newUser(ctl);
      while ((await masterOf(kit, shards.key(shards.of(user.id), "users"))) !== doomed) user = await newUser(ctl);
      let key = 0;
      while ((await masterOf(kit, shards.key(keySlot(`k${key}`) % shards.count, "kv"))) !== doomed) key++;
      const replica = Number(/slave0:ip=[^,]+,port=(\d+)/.exec(await cli(doomed, "INFO", "replication"))![1]);
      await cli(doomed, "WAIT", "1", "2000");

      // The replica stopped and cut off, so what the master is sent next never reaches it (a sleeping
      // replica would still find the stream in its socket's buffer when it wakes).
      const follower = kit.nodes.find((n) => n.port === replica)!;
      process.kill(follower.pid, "SIGSTOP");
      await cli(doomed, "CLIENT", "KILL", "TYPE", "replica");
      expect(await ctl.call(`[store] k${key}!kept?`)).toBe(`[ok] stored k${key}`);
      expect(await ctl.call(`[whisper] ${user.id}!held?`)).toBe("[ok] message queued");
      const failedOver = kit.failover(index);
      await Bun.sleep(300);
      process.kill(follower.pid, "SIGCONT");
      await failedOver;

      // Redis no longer holds either write; the node must say so with a new epoch.
      const retrieved = await ctl.call(`[retrieve] k${key}`).catch((error: Error) => error.message);
      const epoch = await listener.replies.next("a new epoch", 15_000).catch(() => "no new epoch within 15 s");
      console.log("first", first, "then", epoch, "retrieve", retrieved);
      expect(epoch).toStartWith("[epoch] ");
      expect(epoch).not.toBe(first);
    } finally {
      ctl.close();
      listener.close();
      await node.stop();
    }
  }, 90_000);
});

