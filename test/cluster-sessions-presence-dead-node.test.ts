// --sessions 3 on two nodes (real processes, one redis-server): what a listener hears of a user whose
// node dies (kill -9). As with --sessions 1, the death itself raises no [offline]; a node whose lease
// lapsed counts as holding nothing, so the user's next tab elsewhere raises [online] and its close
// [offline], and the sweep takes the dead node out of present:U.

import { describe, expect, test } from "bun:test";
import { Browser, ControlClient, loggedIn } from "./helpers.ts";
import { spawnCluster } from "./cluster-kit.ts";
import { haveRedis, redisCliOn, uniquePrefix, useRedis } from "./redis-server.ts";

const redis = useRedis();

describe.skipIf(!haveRedis)("--sessions 3 presence events when a node dies", () => {
  test("no [offline] for the death; a tab elsewhere then raises [online] and [offline]; the sweep forgets the node", async () => {
    const prefix = uniquePrefix("pdead");
    const nodes = await spawnCluster(redis, prefix, 2, ["--sessions", "3"]);
    const c0 = await ControlClient.connect(nodes[0]!.privatePort);
    const listen = await ControlClient.connect(nodes[0]!.privatePort);
    const events: string[] = [];
    expect(await listen.call("[listen]")).toBe("[ok] listening");
    void (async () => {
      for (;;) events.push(await listen.replies.next("", 600_000));
    })().catch(() => undefined);
    let b: Browser | undefined;
    try {
      const [a, user] = await loggedIn({ publicUrl: nodes[1]!.publicUrl }, c0);
      const about = () => events.filter((e) => e === `[online] ${user.id}` || e === `[offline] ${user.id}`);
      await waitFor(() => about().length === 1, "[online] for the first tab");
      await nodes[1]!.stop("SIGKILL");
      a.close();
      // Lease 2 s, sweep grace 5 leases: past it the dead node is out of present:U.
      await Bun.sleep(13_000);
      expect(about()).toEqual([`[online] ${user.id}`]);
      expect(await c0.call(`[online] ${user.id}`)).toBe("[ok] 0");
      const members = redisCliOn(redis, "SMEMBERS", `${prefix}present:${user.id}`);
      expect(members).toBe("");
      [b] = await loggedIn({ publicUrl: nodes[0]!.publicUrl }, c0, user);
      await waitFor(() => about().length === 2, "[online] for the tab elsewhere");
      b.close();
      await b.closed;
      await waitFor(() => about().length === 3, "[offline] for its close");
      expect(about()).toEqual([`[online] ${user.id}`, `[online] ${user.id}`, `[offline] ${user.id}`]);
    } finally {
      b?.close();
      for (const c of [c0, listen]) c.close();
      await nodes[0]!.stop();
    }
  }, 60_000);
});

/** Waits up to 5 s for `ok`, then fails naming `what`. */
async function waitFor(ok: () => boolean, what: string): Promise<void> {
  const until = Date.now() + 5_000;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}
