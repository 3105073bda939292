// A [join] and a [leave] whose user step times out (the user's master held writes for 3 s) but then
// runs. The backend got `[error] backend unavailable` and does not retry. The user's shard and the
// channel's must still agree: `[members]` lists the user iff the user's shard does (channelsOf, what
// a login subscribes to) and iff a fresh login of it gets the channel's shouts.

import { describe, expect, test } from "bun:test";
import { ShardMap } from "../src/state/shard-map.ts";
import { Browser, ControlClient, newUser, startTestServer, type User } from "./helpers.ts";
import { cli, haveRedisCluster, masterOf, useRedisCluster } from "./redis-cluster.ts";

describe.skipIf(!haveRedisCluster)("a join and a leave whose user step ran late (Redis Cluster)", () => {
  const kit = useRedisCluster();

  test("the user's shard and the channel's agree afterwards", async () => {
    const prefix = `joinlate${Date.now()}:`;
    const shards = ShardMap.cluster(prefix);
    const node = await startTestServer({ redis: kit.masters()[0]!.url, redisPrefix: prefix, lease: 1 });
    const ctl = await ControlClient.connect(node.private.port);
    const pages: Browser[] = [];
    try {
      const channel = await ctl.ok("[newchannel]");
      const home = await masterOf(kit, shards.key(shards.of(Number(channel)), "channels"));
      // Two users whose shards share a master other than the channel's.
      const users: User[] = [];
      let master = 0;
      while (users.length < 2) {
        const user = await newUser(ctl);
        const port = await masterOf(kit, shards.key(shards.of(user.id), "users"));
        if (port === home || (master !== 0 && port !== master)) continue;
        master = port;
        users.push(user);
      }
      const [joiner, leaver] = users as [User, User];
      await ctl.ok(`[join] ${channel}!${leaver.id}`);

      await cli(master, "CLIENT", "PAUSE", "3000", "WRITE");
      const replies = await Promise.all(
        [`[join] ${channel}!${joiner.id}`, `[leave] ${channel}!${leaver.id}`].map(async (command) => {
          const own = await ControlClient.connect(node.private.port);
          const reply = await own.call(command);
          own.close();
          return reply;
        }),
      );
      await Bun.sleep(3_000);
      const members = (await ctl.ok(`[members] ${channel}`)).split(",").filter(Boolean).map(Number);
      const seen: string[] = [];
      for (const user of users) {
        const marker = `ready-${user.id}`;
        await ctl.ok(`[whisper] ${user.id}!${marker}`);
        const page = await Browser.open(node.publicUrl);
        pages.push(page);
        page.send(user.token);
        while ((await page.messages.next("login marker")) !== marker);
        await ctl.ok(`[shout] ${channel}!after-${user.id}`);
        const got = (await page.messages.settled(500)).includes(`after-${user.id}`);
        const tag = shards.tags[shards.of(user.id)]!;
        const userSide = (await cli(master, "HEXISTS", `${tag}uch:${user.id}`, channel)) === "1";
        const listed = members.includes(user.id);
        if (got !== listed || userSide !== listed) seen.push(`user ${user.id}: [members] lists it ${listed}, its shard ${userSide}, its browser got the shout ${got}`);
      }
      console.log(`replies ${JSON.stringify(replies)}; members ${JSON.stringify(members)}; disagreements ${JSON.stringify(seen)}`);
      expect(seen).toEqual([]);
    } finally {
      for (const page of pages) page.close();
      ctl.close();
      await node.stop();
    }
  }, 60_000);
});
