// A data-loss wipe discards only the key names OWN_KEY knows (src/state/lineage.ts), so every key
// webtalk writes on a Redis Cluster must be one of them, or a wipe leaves it behind for good. Two
// nodes with --sessions 3 run every kind of traffic (v2 and v1 browsers on both, joins, leaves, held
// whispers, shouts and whispers into the replay windows, store, killuser, killchannel, kick, listen);
// then every key under the prefix on every master is read back and checked, and a real loss (one
// master flushed) must leave none of the old keys.

import { describe, expect, test } from "bun:test";
import { OWN_KEY } from "../src/state/lineage.ts";
import { ShardMap } from "../src/state/shard-map.ts";
import { spawnCluster } from "./cluster-kit.ts";
import { Browser, ControlClient, newUser, type User } from "./helpers.ts";
import type { Spawned } from "./process.ts";
import { cli, haveRedisCluster, useRedisCluster } from "./redis-cluster.ts";

describe.skipIf(!haveRedisCluster)("the keys a wipe knows (Redis Cluster)", () => {
  const kit = useRedisCluster();

  test("every key webtalk writes is an OWN_KEY name, and a wipe after a loss leaves none of the old ones", async () => {
    const prefix = `own${Date.now()}:`;
    const shards = ShardMap.cluster(prefix);
    const nodes: Spawned[] = await spawnCluster({ url: kit.masters()[0]!.url }, prefix, 2, ["--sessions", "3"]);
    const ctls = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
    const listener = await ControlClient.connect(nodes[1]!.privatePort);
    const pages: Browser[] = [];
    try {
      expect(await listener.call("[listen]")).toBe("[ok] listening");
      const users: User[] = [];
      for (let i = 0; i < 12; i++) users.push(await newUser(ctls[i % 2]!));
      const channels: string[] = [];
      for (let i = 0; i < 4; i++) channels.push(await ctls[i % 2]!.ok("[newchannel]"));
      for (const [i, user] of users.entries()) {
        await ctls[(i + 1) % 2]!.ok(`[join] ${channels[i % 4]}!${user.id}`);
        await ctls[i % 2]!.ok(`[whisper] ${user.id}!held ${i}`);
      }
      for (const [i, user] of users.slice(0, 8).entries()) {
        for (const node of nodes) {
          const page = await Browser.open(node.publicUrl, i % 2 === 0 ? "webtalk.v2" : undefined);
          page.send(user.token);
          pages.push(page);
        }
      }
      await Bun.sleep(500);
      for (let i = 0; i < 20; i++) {
        await ctls[i % 2]!.ok(`[shout] ${channels[i % 4]}!s${i}`);
        await ctls[i % 2]!.ok(`[whisper] ${users[i % 12]!.id}!w${i}`);
      }
      await ctls[0]!.ok("[store] some!value");
      await ctls[1]!.ok(`[leave] ${channels[0]}!${users[0]!.id}`);
      await ctls[0]!.ok(`[kick] ${users[1]!.id}`);
      await ctls[1]!.ok(`[killuser] ${users[2]!.id}`);
      await ctls[0]!.ok(`[killchannel] ${channels[3]}`);
      await Bun.sleep(1_000);

      const before = await keysUnder(kit, shards);
      const unknown = [...before].filter((key) => !OWN_KEY.test(shards.nameOf(key) ?? key));
      console.log(`${before.size} keys under the prefix; names OWN_KEY does not know: ${JSON.stringify(unknown.slice(0, 10))}`);
      expect(unknown).toEqual([]);

      // A real loss: one master forgets everything. The nodes notice and discard every shard.
      await cli(kit.masters()[1]!.port, "FLUSHALL");
      expect(await listener.replies.next("after the loss", 20_000).then(async function skip(m): Promise<string> {
        return m.startsWith("[epoch]") ? m : skip(await listener.replies.next("the new epoch", 20_000));
      })).toStartWith("[epoch] ");
      await Bun.sleep(1_000);
      const after = await keysUnder(kit, shards);
      // Names that a node writes afresh after the wipe (its leases, stats, the new generation's own).
      const fresh = /^(generation|init|channels|nextchannel|lost|epoch|nodes|nodeseen|node:.*|nodestats:.*|seq|writers)$/;
      const old = [...after].filter((key) => before.has(key) && !fresh.test(shards.nameOf(key) ?? key));
      console.log(`after the wipe: ${after.size} keys, of them from before and not re-created: ${JSON.stringify(old.slice(0, 10))}`);
      expect(old).toEqual([]);
    } finally {
      for (const page of pages) page.close();
      for (const ctl of [...ctls, listener]) ctl.close();
      for (const node of nodes) await node.stop("SIGKILL");
    }
  }, 90_000);
});

/** Every key of this prefix's shards, on every master. */
async function keysUnder(kit: { masters(): { port: number }[] }, shards: ShardMap): Promise<Set<string>> {
  const keys = new Set<string>();
  for (const master of kit.masters()) {
    for (const key of (await cli(master.port, "--scan", "--pattern", shards.pattern)).split("\n")) {
      if (key !== "" && shards.nameOf(key) !== undefined) keys.add(key);
    }
  }
  return keys;
}
