// A graceful failover (`CLUSTER FAILOVER` on a replica: the master's clients are paused until the
// replica has every write, then it takes over) loses nothing, so under traffic from two nodes it must
// not be taken for a loss: no new epoch, no browser closed, the stored values and held whispers still
// there, and the traffic goes on.

import { describe, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import { spawnCluster } from "./cluster-kit.ts";
import { Browser, ControlClient, newUser, type User } from "./helpers.ts";
import type { Spawned } from "./process.ts";
import { cli, haveRedisCluster, useRedisCluster } from "./redis-cluster.ts";

describe.skipIf(!haveRedisCluster)("a graceful failover under traffic (Redis Cluster)", () => {
  const kit = useRedisCluster();

  test("is not a data loss: same epoch, browsers kept, values kept, traffic goes on", async () => {
    const nodes: Spawned[] = await spawnCluster({ url: kit.masters()[0]!.url }, `manual${Date.now()}:`, 2);
    const ctls = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
    const listener = await ControlClient.connect(nodes[1]!.privatePort);
    const pages: Browser[] = [];
    try {
      expect(await listener.call("[listen]")).toBe("[ok] listening");
      const epoch = await listener.replies.next("the epoch");
      // The six logins below are told as [online]; nothing else may follow.
      const online: User[] = [];
      for (let i = 0; i < 6; i++) {
        const user = await newUser(ctls[0]!);
        const page = await Browser.open(nodes[i % 2]!.publicUrl);
        page.send(user.token);
        pages.push(page);
        online.push(user);
      }
      let sending = true;
      let answered = 0;
      let unavailable = 0;
      const other: string[] = [];
      const traffic = Promise.all(
        ctls.map(async (ctl, k) => {
          for (let i = 0; sending; i++) {
            const user = online[i % online.length]!;
            const frames = [`[store] k${k}.${i}!v${i}`, `[whisper] ${user.id}!w${k}.${i}`, `[newuser]`];
            ctl.write(encodeFrames(frames));
            for (const reply of await ctl.replies.take(frames.length, "replies", 20_000)) {
              if (reply.startsWith("[ok]")) answered++;
              else if (reply === "[error] backend unavailable") unavailable++;
              else other.push(reply);
            }
          }
        }),
      );
      await Bun.sleep(500);
      // Every master's replica takes over gracefully, one after the other.
      const replicas = kit.nodes.filter((n) => n.role === "replica");
      for (const replica of replicas) {
        expect(await cli(replica.port, "CLUSTER", "FAILOVER")).toBe("OK");
        for (let i = 0; i < 100 && !(await cli(replica.port, "ROLE")).startsWith("master"); i++) await Bun.sleep(100);
        await Bun.sleep(500);
      }
      await Bun.sleep(1_500);
      sending = false;
      await traffic;
      const closed = await Promise.all(pages.map((p) => Promise.race([p.closed.then((c) => c.code), Bun.sleep(50).then(() => 0)])));
      const events = await listener.replies.settled(1_000);
      const logins = events.filter((e) => e.startsWith("[online]")).length;
      console.log(`answered ${answered}, unavailable ${unavailable}, other ${other.length}, closed ${JSON.stringify(closed)}, events: ${logins} [online], then ${JSON.stringify(events.slice(logins))}`);
      expect(events.filter((e) => !e.startsWith("[online]"))).toEqual([]);
      expect(closed.filter((code) => code !== 0)).toEqual([]);
      expect(other).toEqual([]);
      expect(await ctls[0]!.ok("[retrieve] k0.0")).toBe("v0");
      expect(await listener.ok("[stats]")).toContain(`epoch=${epoch.slice("[epoch] ".length)}`);
    } finally {
      for (const page of pages) page.close();
      for (const ctl of [...ctls, listener]) ctl.close();
      for (const node of nodes) await node.stop("SIGKILL");
    }
  }, 120_000);
});
