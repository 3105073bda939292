// A whisper to a user whose node was paused (SIGSTOP) past its lease answers "[ok] message queued"
// (documented: the user counts as offline). Once the node runs again, reclaims the user and [online]
// says 1, the user's browser is still the same connected browser: the queued whisper must reach it
// then, not wait for a login that may never come. Real processes on one redis-server.

import { describe, expect, test } from "bun:test";
import { ControlClient, loggedIn } from "./helpers.ts";
import { spawnCluster } from "./cluster-kit.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";

const redis = useRedis();

describe.skipIf(!haveRedis)("a whisper held while the user's node was paused", () => {
  test("reaches the still-connected browser once the node is back", async () => {
    const prefix = uniquePrefix("lapseheld");
    const [a, b] = await spawnCluster(redis, prefix, 2);
    const ctl = await ControlClient.connect(a!.privatePort);
    let stopped = false;
    const [browser, user] = await loggedIn({ publicUrl: b!.publicUrl }, ctl);
    try {
      process.kill(b!.proc.pid, "SIGSTOP");
      stopped = true;
      await Bun.sleep(3_000);
      const queued = await ctl.call(`[whisper] ${user.id}!during-pause é "q" \\ / 😀`);
      process.kill(b!.proc.pid, "SIGCONT");
      stopped = false;
      await Bun.sleep(2_000);
      const online = await ctl.call(`[online] ${user.id}`);
      const sent = await ctl.call(`[whisper] ${user.id}!after-pause`);
      const got: string[] = [];
      for (;;) {
        const m = await browser.messages.next("more", 1_500).catch(() => undefined);
        if (m === undefined) break;
        got.push(m);
      }
      expect({ queued, online, sent, got }).toEqual({
        queued: "[ok] message queued",
        online: "[ok] 1",
        sent: "[ok] message sent",
        got: ['during-pause é "q" \\ / 😀', "after-pause"],
      });
    } finally {
      if (stopped) process.kill(b!.proc.pid, "SIGCONT");
      browser.close();
      ctl.close();
      await a!.stop("SIGKILL");
      await b!.stop("SIGKILL");
    }
  }, 60_000);
});
