// routes:C holds where each member of C is online (redis-cluster-state.ts). A presence change records
// its routes in the channels its user step listed; a killuser that takes the user out of C in between
// must not leave a route behind, or routes:C grows with every such race, for good: the user is gone.
// Churned here from the control port: users logging in while another node kills them (channel 1 is
// every user's), or takes them out of a channel. A left user's route may stay (a join of it may be on
// its way, whose route must be the newest presence); it is counted, not asserted: bounded by users ×
// channels, and overwritten when the user joins again.

import { describe, expect, test } from "bun:test";
import { ShardMap } from "../src/state/shard-map.ts";
import { spawnCluster } from "./cluster-kit.ts";
import { Browser, ControlClient, newUser } from "./helpers.ts";
import type { Spawned } from "./process.ts";
import { cli, haveRedisCluster, masterOf, useRedisCluster } from "./redis-cluster.ts";

const ROUNDS = Number(process.env.STRAY_ROUNDS ?? 300);

describe.skipIf(!haveRedisCluster)("routes of non-members under churn (Redis Cluster)", () => {
  const kit = useRedisCluster();

  test("after logins racing killusers and leaves, routes:C names members only", async () => {
    const prefix = `strays${Date.now()}:`;
    const shards = ShardMap.cluster(prefix);
    const nodes: Spawned[] = await spawnCluster({ url: kit.masters()[0]!.url }, prefix, 2);
    const [a, b] = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
    const pages: Browser[] = [];
    try {
      const channel = Number(await a!.ok("[newchannel]"));
      for (let round = 0; round < ROUNDS; round++) {
        const user = await newUser(a!);
        await a!.ok(`[join] ${channel}!${user.id}`);
        const page = await Browser.open(nodes[round % 2]!.publicUrl);
        pages.push(page);
        page.send(user.token);
        // The other node takes the user out while its login's routes are being recorded.
        await Bun.sleep(Math.random() * 4);
        await b!.call(round % 2 === 0 ? `[killuser] ${user.id}` : `[leave] ${channel}!${user.id}`);
        if (pages.length > 20) pages.shift()!.close();
      }
      for (const page of pages) page.close();
      await Bun.sleep(1_000);
      const strays: Record<string, number> = {};
      for (const id of [1, channel]) {
        const key = (name: string) => shards.key(shards.of(id), `${name}:${id}`);
        const port = await masterOf(kit, key("members"));
        const members = new Set((await cli(port, "ZRANGE", key("members"), "0", "-1")).split("\n").filter(Boolean));
        strays[id === 1 ? "channel 1" : "channel"] = (await cli(port, "HKEYS", key("routes"))).split("\n").filter((u) => u !== "" && !members.has(u)).length;
      }
      console.log(`${ROUNDS} rounds: routes of non-members`, JSON.stringify(strays));
      expect(strays["channel 1"]).toBe(0);
    } finally {
      for (const page of pages) page.close();
      a!.close();
      b!.close();
      for (const node of nodes) await node.stop("SIGKILL");
    }
  }, 120_000);
});
