// A node killed with SIGKILL and started again, four times, while its users log in on it and join a
// channel (real processes, lease 1 s). Once the sweep's grace (5 leases) has passed, Redis holds no
// trace of the dead nodes: chnodes:C names only the live node with exactly its online members, and the
// nodes/nodeseen/online records name only live nodes. A node that hosts nothing for the channel then
// receives nothing for its shouts.

import { describe, expect, test } from "bun:test";
import { Browser, ControlClient, newUser } from "./helpers.ts";
import { spawnNode } from "./cluster-kit.ts";
import type { Spawned } from "./process.ts";
import { hashLenIn, haveRedis, keyIn, redisCliOn, uniquePrefix, useRedis } from "./redis-server.ts";

const redis = useRedis();

function cli(...args: string[]): string[] {
  const out = redisCliOn(redis, ...args);
  return out === "" ? [] : out.split("\n");
}

async function busReceived(node: Spawned): Promise<number> {
  const text = await (await fetch(`${node.adminUrl}/metrics`)).text();
  return Number(/^webtalk_bus_messages_received_total (\d+)$/m.exec(text)![1]);
}

describe.skipIf(!haveRedis)("kill -9 and restart, again and again", () => {
  test("leaves no routes, nodes or online entries of the dead behind", async () => {
    const prefix = uniquePrefix("killloop");
    const a = await spawnNode(redis, prefix, 1);
    const ctl = await ControlClient.connect(a.privatePort);
    const spawned: Spawned[] = [a];
    const browsers: Browser[] = [];
    try {
      const channel = await ctl.ok("[newchannel]");
      const other = await ctl.ok("[newchannel]");
      const users = [await newUser(ctl), await newUser(ctl)];
      for (const u of users) await ctl.ok(`[join] ${channel}!${u.id}`);
      let b: Spawned | undefined;
      for (let round = 0; round < 4; round++) {
        b = await spawnNode(redis, prefix, 1);
        spawned.push(b);
        const br = await Browser.open(b.publicUrl);
        browsers.push(br);
        br.send(users[round % 2]!.token);
        await Bun.sleep(300);
        if (round < 3) await b.stop("SIGKILL");
      }
      await Bun.sleep(7_000); // past 5 leases
      const live = new Set(cli("SMEMBERS", keyIn(prefix, "nodes")));
      const chnodes = cli("HGETALL", keyIn(prefix, `chnodes:${channel}`, Number(channel)));
      const online = hashLenIn(redis, prefix, "online");
      const seen = cli("HKEYS", keyIn(prefix, "nodeseen"));
      // The last B hosts one member; A hosts nothing: a shout to the other channel reaches no node.
      const before = await busReceived(a);
      for (let i = 0; i < 50; i++) await ctl.ok(`[shout] ${other}!x`);
      for (let i = 0; i < 50; i++) await ctl.ok(`[shout] ${channel}!x`);
      const after = await busReceived(a);
      expect({ nodes: live.size, chnodes: chnodes.length, chCount: chnodes[1], online, seen: seen.length, aReceived: after - before }).toEqual({
        nodes: 2,
        chnodes: 2,
        chCount: "1",
        online: 1,
        seen: 2,
        aReceived: 0,
      });
    } finally {
      for (const br of browsers) br.close();
      ctl.close();
      for (const node of spawned) await node.stop("SIGKILL").catch(() => undefined);
    }
  }, 60_000);
});
