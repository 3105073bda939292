// A login whose presence step took (the user's shard records it online on node B) but whose routes
// step did not (the channel's master was away, then failed over without ever running it). The login
// is refused; the browser logs in again on B once the cluster is back. From then on it is online
// throughout, so every shout of its channel answered [ok] must reach it.

import { describe, expect, test } from "bun:test";
import { ShardMap } from "../src/state/shard-map.ts";
import { spawnCluster } from "./cluster-kit.ts";
import { Browser, ControlClient, newUser, type User } from "./helpers.ts";
import type { Spawned } from "./process.ts";
import { haveRedisCluster, masterOf, useRedisCluster } from "./redis-cluster.ts";

describe.skipIf(!haveRedisCluster)("a login's routes lost in a failover (Redis Cluster)", () => {
  const kit = useRedisCluster();

  test("the browser logged in again receives its channel's shouts", async () => {
    const prefix = `routes${Date.now()}:`;
    const shards = ShardMap.cluster(prefix);
    const nodes: Spawned[] = await spawnCluster({ url: kit.masters()[0]!.url }, prefix, 2);
    const [a, b] = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
    const pages: Browser[] = [];
    try {
      // A channel on a master that is not the seed; its only member, a user whose shard is elsewhere.
      let channel = Number(await a!.ok("[newchannel]"));
      let index = kit.masters().findIndex((m) => m.port !== kit.masters()[0]!.port);
      while ((await masterOf(kit, shards.key(shards.of(channel), "channels"))) === kit.masters()[0]!.port) channel = Number(await a!.ok("[newchannel]"));
      const away = await masterOf(kit, shards.key(shards.of(channel), "channels"));
      index = kit.masters().findIndex((m) => m.port === away);
      let user: User = await newUser(a!);
      while ((await masterOf(kit, shards.key(shards.of(user.id), "users"))) === away) user = await newUser(a!);
      await a!.ok(`[join] ${channel}!${user.id}`);

      // The channel's master stops answering: the login's presence step takes, its routes step times out.
      process.kill(kit.masters()[index]!.pid, "SIGSTOP");
      const first = await Browser.open(nodes[1]!.publicUrl);
      pages.push(first);
      first.send(user.token);
      const refused = await Promise.race([first.closed.then((c) => `closed ${c.code}`), first.messages.next("anything", 8_000).then((m) => `got ${m}`)]);
      // ... and fails over without ever running it.
      await kit.failover(index);

      // Refused, so not online: a whisper meanwhile is held, not sent to no browser.
      await Bun.sleep(3_000);
      const ghost = [await a!.call(`[online] ${user.id}`), await a!.call(`[whisper] ${user.id}!while refused`)];
      // The browser logs in again on the same node, as /webtalk.js does after a 1013.
      let second: Browser | undefined;
      for (let i = 0; i < 50 && !second; i++) {
        const page = await Browser.open(nodes[1]!.publicUrl);
        pages.push(page);
        const marker = `ready${i}`;
        page.send(user.token);
        const reply = await b!.call(`[whisper] ${user.id}!${marker}`);
        const got = await Promise.race([page.closed.then(() => ""), page.messages.next("marker", 3_000).catch(() => "")]);
        if (reply === "[ok] message sent" && got === marker) second = page;
        else await Bun.sleep(200);
      }
      expect(second).toBeDefined();
      const answers: string[] = [];
      for (let i = 0; i < 5; i++) answers.push(await a!.call(`[shout] ${channel}!after failover ${i}`));
      const soon = (await second!.messages.settled(1_000)).filter((m) => m.startsWith("after failover")).length;
      // Several lease renewals later (lease 2 s), still online on B throughout.
      await Bun.sleep(5_000);
      for (let i = 5; i < 10; i++) answers.push(await a!.call(`[shout] ${channel}!after failover ${i}`));
      const later = (await second!.messages.settled(1_000)).filter((m) => m.startsWith("after failover")).length;
      console.log(`after the refusal: ${JSON.stringify(ghost)}; first login: ${refused}; shouts answered ${JSON.stringify([...new Set(answers)])}; the browser online since got ${soon} of 5, then ${later} of 5 after 5 s`);
      expect(answers.every((r) => r === "[ok] message sent")).toBe(true);
      expect([soon, later]).toEqual([5, 5]);
    } finally {
      for (const page of pages) page.close();
      a!.close();
      b!.close();
      for (const node of nodes) await node.stop("SIGKILL");
    }
  }, 90_000);
});
