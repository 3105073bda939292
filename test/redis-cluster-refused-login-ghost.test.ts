// A login refused (1013) because its claim failed half way: the user's shard recorded it online on the
// node, then the routes step timed out (the channel's master held writes for 4 s). The browser is
// gone, so the user is offline: `[online]` says 0 and a whisper is held for its next login, rather
// than answered "sent" to a node with no browser for it.

import { describe, expect, test } from "bun:test";
import { ShardMap } from "../src/state/shard-map.ts";
import { spawnCluster } from "./cluster-kit.ts";
import { Browser, ControlClient, newUser, type User } from "./helpers.ts";
import type { Spawned } from "./process.ts";
import { cli, haveRedisCluster, masterOf, useRedisCluster } from "./redis-cluster.ts";

describe.skipIf(!haveRedisCluster)("a login refused half way (Redis Cluster)", () => {
  const kit = useRedisCluster();

  test.each([1, 2])("--sessions %d: leaves the user offline: [online] 0, whispers held and delivered at the next login", async (sessions) => {
    const prefix = `ghost${sessions}-${Date.now()}:`;
    const shards = ShardMap.cluster(prefix);
    const nodes: Spawned[] = await spawnCluster({ url: kit.masters()[0]!.url }, prefix, 2, ["--sessions", String(sessions)]);
    const [a, b] = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
    const pages: Browser[] = [];
    try {
      const channel = Number(await a!.ok("[newchannel]"));
      const paused = await masterOf(kit, shards.key(shards.of(channel), "channels"));
      let user: User = await newUser(a!);
      while ((await masterOf(kit, shards.key(shards.of(user.id), "users"))) === paused) user = await newUser(a!);
      await a!.ok(`[join] ${channel}!${user.id}`);

      await cli(paused, "CLIENT", "PAUSE", "4000", "WRITE");
      const page = await Browser.open(nodes[1]!.publicUrl);
      pages.push(page);
      page.send(user.token);
      const refused = await Promise.race([page.closed.then((c) => `closed ${c.code}`), page.messages.next("anything", 8_000).then((m) => `got ${m}`)]);
      // The pause is over and several lease renewals (2 s) have passed.
      await Bun.sleep(6_000);
      const online = await a!.call(`[online] ${user.id}`);
      const whisper = await a!.call(`[whisper] ${user.id}!while away`);
      const next = await Browser.open(nodes[0]!.publicUrl);
      pages.push(next);
      next.send(user.token);
      const first = await next.messages.next("the held whisper", 5_000).catch(() => "nothing");
      console.log(`login: ${refused}; then [online] ${online}, whisper ${whisper}, next login got ${first}`);
      expect(refused).toBe("closed 1013");
      expect([online, whisper, first]).toEqual(["[ok] 0", "[ok] message queued", "while away"]);
    } finally {
      for (const page of pages) page.close();
      a!.close();
      b!.close();
      for (const node of nodes) await node.stop("SIGKILL");
    }
  }, 60_000);
});
