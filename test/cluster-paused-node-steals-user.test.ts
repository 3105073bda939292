// A node paused (SIGSTOP) past its lease, but not past the sweep's grace, must not take a user back
// from the live node where that user logged in meanwhile. Real webtalk processes on one redis-server:
// the user's browser is on node B; B is stopped for 2 leases; the user logs in again on node A (its
// old browser on B is unreachable, so A admits it); B is resumed. From then on the user's whispers and
// its channel's shouts must reach the browser on A (the live login), and Redis must name A as its node.

import { describe, expect, test } from "bun:test";
import { Browser, ControlClient, newUser } from "./helpers.ts";
import { spawnCluster } from "./cluster-kit.ts";
import { haveRedis, keyIn, redisCliOn, uniquePrefix, useRedis } from "./redis-server.ts";

const redis = useRedis();

describe.skipIf(!haveRedis)("a node paused past its lease", () => {
  test("does not take back a user that logged in on another node meanwhile", async () => {
    const prefix = uniquePrefix("paused");
    const [a, b] = await spawnCluster(redis, prefix, 2);
    const ctl = await ControlClient.connect(a!.privatePort);
    const browsers: Browser[] = [];
    let stopped = false;
    try {
      const user = await newUser(ctl);
      const channel = await ctl.ok("[newchannel]");
      await ctl.ok(`[join] ${channel}!${user.id}`);

      // The first browser, on B, admitted (a held whisper arrives).
      expect(await ctl.call(`[whisper] ${user.id}!first`)).toBe("[ok] message queued");
      const onB = await Browser.open(b!.publicUrl);
      browsers.push(onB);
      onB.send(user.token);
      expect(await onB.messages.next("B's login")).toBe("first");

      // B stops for two leases (lease 2 s; the sweep's grace is 5 leases).
      process.kill(b!.proc.pid, "SIGSTOP");
      stopped = true;
      await Bun.sleep(4_500);

      // The user comes back on A: admitted, as B's lease lapsed.
      expect(await ctl.call(`[whisper] ${user.id}!second`)).toBe("[ok] message queued");
      const onA = await Browser.open(a!.publicUrl);
      browsers.push(onA);
      onA.send(user.token);
      expect(await onA.messages.next("A's login")).toBe("second");

      process.kill(b!.proc.pid, "SIGCONT");
      stopped = false;
      await Bun.sleep(2_500); // B renews its lease (every 667 ms) and finds it had lapsed

      const whisper = await ctl.call(`[whisper] ${user.id}!private-after-resume`);
      const shout = await ctl.call(`[shout] ${channel}!shout-after-resume`);
      await Bun.sleep(1_000);
      const seenOnA = await onA.messages.settled(200);
      const seenOnB = await onB.messages.settled(200);
      const online = redisCliOn(redis, "HGET", keyIn(prefix, "online", user.id), String(user.id));
      expect({ whisper, shout, seenOnA, seenOnB, bClosed: await Promise.race([onB.closed.then((c) => c.code), Bun.sleep(10).then(() => "open")]) }).toEqual({
        whisper: "[ok] message sent",
        shout: "[ok] message sent",
        seenOnA: ["private-after-resume", "shout-after-resume"],
        seenOnB: [],
        bClosed: 4002,
      });
      expect(online).not.toBe("");
    } finally {
      if (stopped) process.kill(b!.proc.pid, "SIGCONT");
      for (const br of browsers) br.close();
      ctl.close();
      await a!.stop("SIGKILL");
      await b!.stop("SIGKILL");
    }
  }, 60_000);
});
