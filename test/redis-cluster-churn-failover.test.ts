// Three nodes on a real 3-master Redis Cluster, 30 webtalk.v2 browsers, and three backends pipelining
// random joins, leaves, whispers and shouts; a master is killed mid-way and its replica promoted.
// What users would feel is measured: a whisper in another user's browser, a user's whispers out of
// order, and after it all, whether each channel's last shout reaches exactly its members.

import { describe, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import { spawnCluster } from "./cluster-kit.ts";
import { Browser, ControlClient, newUser, type User } from "./helpers.ts";
import type { Spawned } from "./process.ts";
import { haveRedisCluster, useRedisCluster } from "./redis-cluster.ts";

describe.skipIf(!haveRedisCluster)("churn on a Redis Cluster while a master fails over", () => {
  const kit = useRedisCluster();

  test("no whisper misdelivered or out of order, and the final memberships are exactly delivered", async () => {
    const nodes: Spawned[] = await spawnCluster({ url: kit.masters()[0]!.url }, `churn${Date.now()}:`, 3);
    const pages: Browser[] = [];
    const bad: string[] = [];
    let errors = 0;
    let answered = 0;
    try {
      const ctls = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
      const users: User[] = [];
      for (let i = 0; i < 30; i++) users.push(await newUser(ctls[i % 3]!));
      const channels: string[] = [];
      for (let i = 0; i < 5; i++) channels.push(await ctls[i % 3]!.ok("[newchannel]"));
      const got = new Map<number, string[]>();
      for (const [i, user] of users.entries()) {
        const page = await Browser.open(nodes[i % 3]!.publicUrl, "webtalk.v2");
        const list: string[] = [];
        got.set(user.id, list);
        page.ws.addEventListener("message", (event) => list.push(String(event.data)));
        page.send(user.token);
        pages.push(page);
      }
      await Bun.sleep(300);
      const pick = <T>(list: T[]) => list[Math.floor(Math.random() * list.length)]!;
      let sent = 0;
      const end = Date.now() + 8_000;
      const failover = Bun.sleep(2_500).then(() => kit.failover(1));
      await Promise.all(
        ctls.map(async (ctl, k) => {
          while (Date.now() < end) {
            const frames = Array.from({ length: 40 }, () => {
              const user = pick(users);
              const channel = pick(channels);
              const r = Math.random();
              if (r < 0.15) return `[join] ${channel}!${user.id}`;
              if (r < 0.3) return `[leave] ${channel}!${user.id}`;
              if (r < 0.65) return `[whisper] ${user.id}!to${user.id}:${k}:${sent++}`;
              return `[shout] ${channel}!c${channel}:${k}:${sent++}`;
            });
            ctl.write(encodeFrames(frames));
            for (const reply of await ctl.replies.take(frames.length, "replies", 20_000)) {
              if (reply === "[error] backend unavailable") errors++;
              else if (!reply.startsWith("[ok]")) bad.push(`reply ${reply}`);
              else answered++;
            }
          }
        }),
      );
      await failover;
      // Settled: each channel's members, then one last shout each.
      await Bun.sleep(3_000);
      const members = new Map<string, Set<number>>();
      for (const channel of channels) {
        const page = await ctls[0]!.ok(`[members] ${channel}!0`);
        members.set(channel, new Set(page.split(/[^\d]+/).map(Number).filter((id) => id > 1_000)));
        await ctls[1]!.ok(`[shout] ${channel}!final${channel}`);
      }
      await Bun.sleep(1_000);
      for (const user of users) {
        let last = 0;
        for (const message of got.get(user.id)!) {
          if (message === "#gap u") last = 0;
          const match = /^u:(\d+)!(.*)$/s.exec(message);
          if (!match) continue;
          if (!match[2]!.startsWith(`to${user.id}:`)) bad.push(`user ${user.id} got another's whisper: ${match[2]}`);
          if (last !== 0 && Number(match[1]) !== last + 1) bad.push(`user ${user.id} whispers ${last} -> ${match[1]}`);
          last = Number(match[1]);
        }
        for (const [channel, set] of members) {
          const has = got.get(user.id)!.some((m) => m.endsWith(`!final${channel}`));
          if (has !== set.has(user.id)) bad.push(`channel ${channel}: user ${user.id} member ${set.has(user.id)}, got the last shout ${has}`);
        }
      }
    } finally {
      for (const page of pages) page.close();
      for (const node of nodes) await node.stop("SIGKILL");
    }
    expect(bad).toEqual([]);
    expect(answered).toBeGreaterThan(1_000);
    // The failover's commands failed fast: some, not all.
    expect(errors).toBeLessThan(answered);
  }, 90_000);
});
