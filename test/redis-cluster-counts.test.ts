// [stats], [count] and [online] sum or read shards spread over three masters. Checked against what the
// test made: users and channels created on three nodes, memberships, held whispers, browsers online
// on two nodes; then one node SIGKILLed: its browsers stop counting as online everywhere once its
// lease lapsed, the others still count, and no channel routes its shouts to the dead node any more.

import { describe, expect, test } from "bun:test";
import { spawnCluster } from "./cluster-kit.ts";
import { Browser, ControlClient, newUser, type User } from "./helpers.ts";
import type { Spawned } from "./process.ts";
import { ShardMap } from "../src/state/shard-map.ts";
import { cli, haveRedisCluster, masterOf, useRedisCluster } from "./redis-cluster.ts";

describe.skipIf(!haveRedisCluster)("counts across shards (Redis Cluster)", () => {
  const kit = useRedisCluster();

  test("[stats], [count] and [online] match what was made, before and after a node dies", async () => {
    const prefix = `counts${Date.now()}:`;
    const shards = ShardMap.cluster(prefix);
    const nodes: Spawned[] = await spawnCluster({ url: kit.masters()[0]!.url }, prefix, 3);
    const ctls = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
    const pages: Browser[] = [];
    try {
      const users: User[] = [];
      for (let i = 0; i < 30; i++) users.push(await newUser(ctls[i % 3]!));
      const channels: string[] = [];
      for (let i = 0; i < 4; i++) channels.push(await ctls[i % 3]!.ok("[newchannel]"));
      // Channel k gets users k, k+4, ... (from every node); users 0-9 online on node 1, 10-19 on node 2.
      for (const [i, user] of users.entries()) await ctls[(i + 1) % 3]!.ok(`[join] ${channels[i % 4]}!${user.id}`);
      for (let i = 20; i < 30; i++) await ctls[i % 3]!.ok(`[whisper] ${users[i]!.id}!held ${i}`);
      for (let i = 0; i < 20; i++) {
        const marker = `ready${i}`;
        await ctls[0]!.ok(`[whisper] ${users[i]!.id}!${marker}`);
        const page = await Browser.open(nodes[i < 10 ? 1 : 2]!.publicUrl);
        page.send(users[i]!.token);
        while ((await page.messages.next("login marker")) !== marker);
        pages.push(page);
      }
      const onlineIn = (k: number, alive: (i: number) => boolean) => users.filter((_, i) => i % 4 === k && alive(i)).length;
      const expectCounts = async (ctl: ControlClient, alive: (i: number) => boolean) => {
        const stats = await ctl.ok("[stats]");
        const field = (name: string) => Number(new RegExp(`(?:^| )${name}=(\\d+)`).exec(stats)?.[1]);
        expect({ users: field("users"), channels: field("channels"), held: field("held"), online: field("online") }).toEqual({
          users: 30,
          channels: 5,
          held: 10,
          online: users.filter((_, i) => alive(i)).length,
        });
        for (const [k, channel] of channels.entries()) {
          expect(await ctl.ok(`[count] ${channel}`)).toBe(`${users.filter((_, i) => i % 4 === k).length}!${onlineIn(k, alive)}`);
        }
        for (const [i, user] of users.entries()) expect(await ctl.ok(`[online] ${user.id}`)).toBe(alive(i) ? "1" : "0");
      };
      for (const ctl of ctls) await expectCounts(ctl, (i) => i < 20);

      await nodes[2]!.stop("SIGKILL");
      // Lease 2 s: its browsers count as offline once it lapsed (and after the sweep's grace, gone).
      await Bun.sleep(15_000);
      for (const ctl of ctls.slice(0, 2)) await expectCounts(ctl, (i) => i < 10);
      // Shouts are published to the nodes chnodes:C names: none of them may be the dead one.
      const routedToDead: string[] = [];
      for (const channel of channels) {
        const key = (name: string) => shards.key(shards.of(Number(channel)), name);
        const port = await masterOf(kit, key("nodes"));
        const live = new Set((await cli(port, "SMEMBERS", key("nodes"))).split("\n").filter(Boolean));
        for (const node of (await cli(port, "HKEYS", key(`chnodes:${channel}`))).split("\n").filter(Boolean)) {
          if (!live.has(node)) routedToDead.push(`${channel} -> ${node}`);
        }
        expect(live.size).toBe(2);
      }
      expect(routedToDead).toEqual([]);
    } finally {
      for (const page of pages) page.close();
      for (const ctl of ctls) ctl.close();
      for (const node of nodes) await node.stop("SIGKILL");
    }
  }, 90_000);
});
