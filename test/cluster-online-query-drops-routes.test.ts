// "A node whose lease lapsed keeps its routes for 5 leases" (clustering.md): a node paused (SIGSTOP)
// past its lease, not past that grace, still gets the shouts sent meanwhile once it runs again (Redis
// buffers its subscription). A read-only [online] about one of its users, asked on another node during
// the pause, must not change that: both users below must get their channel's shout.

import { describe, expect, test } from "bun:test";
import { Browser, ControlClient, loggedIn } from "./helpers.ts";
import { spawnCluster } from "./cluster-kit.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";

const redis = useRedis();

describe.skipIf(!haveRedis)("a lapsed node's routes", () => {
  test("are not dropped by an [online] query about one of its users", async () => {
    const prefix = uniquePrefix("onlineq");
    const [a, b] = await spawnCluster(redis, prefix, 2);
    const ctl = await ControlClient.connect(a!.privatePort);
    const browsers: Browser[] = [];
    let stopped = false;
    try {
      const c1 = await ctl.ok("[newchannel]");
      const c2 = await ctl.ok("[newchannel]");
      const [asked, askedUser] = await loggedIn({ publicUrl: b!.publicUrl }, ctl);
      const [other, otherUser] = await loggedIn({ publicUrl: b!.publicUrl }, ctl);
      browsers.push(asked, other);
      await ctl.ok(`[join] ${c1}!${askedUser.id}`);
      await ctl.ok(`[join] ${c2}!${otherUser.id}`);

      process.kill(b!.proc.pid, "SIGSTOP");
      stopped = true;
      await Bun.sleep(3_000); // lease 2 s: lapsed; the sweep's grace is 10 s
      const online = await ctl.call(`[online] ${askedUser.id}`);
      expect(await ctl.call(`[shout] ${c1}!to-asked`)).toBe("[ok] message sent");
      expect(await ctl.call(`[shout] ${c2}!to-other`)).toBe("[ok] message sent");
      process.kill(b!.proc.pid, "SIGCONT");
      stopped = false;
      await Bun.sleep(1_500);
      expect({ online, asked: await asked.messages.settled(300), other: await other.messages.settled(300) }).toEqual({
        online: "[ok] 0", // documented: a lapsed node's users count as offline
        asked: ["to-asked"],
        other: ["to-other"],
      });
    } finally {
      if (stopped) process.kill(b!.proc.pid, "SIGCONT");
      for (const br of browsers) br.close();
      ctl.close();
      await a!.stop("SIGKILL");
      await b!.stop("SIGKILL");
    }
  }, 60_000);
});
