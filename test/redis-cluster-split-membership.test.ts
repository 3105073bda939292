// A join, a leave and a killuser whose user step applied in the user's shard but whose channel step
// never did (the channel's master held its writes past STEP_MS, answered 'stale' to a caller that had
// already timed out). After that the two shards must still agree on who is a member: what `[members]`
// and `[count]` say, and what each user's browser receives after a fresh login.

import { describe, expect, test } from "bun:test";
import { ShardMap } from "../src/state/shard-map.ts";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, frame, newUser, startTestServer, type User } from "./helpers.ts";
import { cli, haveRedisCluster, masterOf, useRedisCluster } from "./redis-cluster.ts";

/** Longer than the 60 s a channel step may trail its user step (STEP_MS in redis-cluster-state.ts). */
const PAUSE_MS = 63_000;

describe.skipIf(!haveRedisCluster)("a membership's channel step lost after its user step (Redis Cluster)", () => {
  const kit = useRedisCluster();

  test("the user's shard and the channel's shard agree afterwards: [members], [count] and deliveries", async () => {
    const prefix = `split${Date.now()}:`;
    const shards = ShardMap.cluster(prefix);
    const node: Webtalk = await startTestServer({ redis: kit.masters()[0]!.url, redisPrefix: prefix, lease: 1 });
    const ctl = await ControlClient.connect(node.private.port);
    const pages: Browser[] = [];
    try {
      const channel = Number(await ctl.ok("[newchannel]"));
      const paused = await masterOf(kit, shards.key(shards.of(channel), "channels"));
      // Users whose shards live on another master than the channel's: their user steps go through.
      const users: User[] = [];
      while (users.length < 4) {
        const user = await newUser(ctl);
        if ((await masterOf(kit, shards.key(shards.of(user.id), "users"))) !== paused) users.push(user);
      }
      const [joiner, leaver, killed, watcher] = users as [User, User, User, User];
      for (const member of [leaver, killed, watcher]) await ctl.ok(`[join] ${channel}!${member.id}`);
      pages.push(await login(node, watcher));

      await cli(paused, "CLIENT", "PAUSE", String(PAUSE_MS), "WRITE");
      // One control connection each, so a late reply cannot be taken for another command's.
      const commands = [`[join] ${channel}!${joiner.id}`, `[leave] ${channel}!${leaver.id}`, `[killuser] ${killed.id}`];
      const replies = commands.map(async (command) => {
        const own = await ControlClient.connect(node.private.port);
        own.write(frame(command));
        const reply = await own.replies.next(`reply to ${command}`, PAUSE_MS + 10_000).catch((error: Error) => error.message);
        own.close();
        return reply;
      });
      await Bun.sleep(PAUSE_MS + 2_000);
      console.log("replies while the channel's master held writes:", JSON.stringify(await Promise.all(replies)));

      const members = (await ctl.ok(`[members] ${channel}`)).split(",").filter(Boolean).map(Number);
      const count = await ctl.ok(`[count] ${channel}`);
      const inUserShard = async (user: User) =>
        (await cli(await masterOf(kit, shards.key(shards.of(user.id), "users")), "HEXISTS", shards.key(shards.of(user.id), `uch:${user.id}`), String(channel))) === "1";
      const disagreements: string[] = [];
      for (const [name, user] of [["joiner", joiner], ["leaver", leaver]] as const) {
        const page = await login(node, user);
        pages.push(page);
        await ctl.ok(`[shout] ${channel}!after-${user.id}`);
        const got = (await page.messages.settled(500)).includes(`after-${user.id}`);
        const listed = members.includes(user.id);
        const userSide = await inUserShard(user);
        if (listed !== got || listed !== userSide) {
          disagreements.push(`${name}: [members] lists it ${listed}, user shard (channelsOf) ${userSide}, its browser got the shout ${got}`);
        }
      }
      if (members.includes(killed.id)) disagreements.push(`killed user still listed by [members] (count ${count})`);
      console.log("members", JSON.stringify(members), "count", count, "disagreements", JSON.stringify(disagreements));
      expect(disagreements).toEqual([]);
    } finally {
      for (const page of pages) page.close();
      ctl.close();
      await node.stop();
    }
  }, 120_000);
});

/** Logs `user` in on `node` and returns once its login marker arrived. */
async function login(node: Webtalk, user: User): Promise<Browser> {
  const ctl = await ControlClient.connect(node.private.port);
  try {
    const marker = `ready-${user.id}`;
    await ctl.ok(`[whisper] ${user.id}!${marker}`);
    const page = await Browser.open(node.publicUrl);
    page.send(user.token);
    while ((await page.messages.next("the login marker", 10_000)) !== marker);
    return page;
  } finally {
    ctl.close();
  }
}
