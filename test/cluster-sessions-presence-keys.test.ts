// --sessions 3 on two nodes (real processes, one redis-server): present:ID, the set of nodes holding an
// admitted browser of user ID, is bounded from outside: at most one member per node, and gone with the
// user's last browser, however many tabs come and go (some leaving mid-login) on both nodes.

import { describe, expect, test } from "bun:test";
import { Browser, ControlClient, newUser } from "./helpers.ts";
import { spawnCluster } from "./cluster-kit.ts";
import { haveRedis, keysPattern, redisCliOn, uniquePrefix, useRedis } from "./redis-server.ts";

const redis = useRedis();

/** The present:ID keys under `prefix`, each with its member count. */
function presentSets(prefix: string): Map<string, number> {
  const keys = redisCliOn(redis, "--scan", "--pattern", keysPattern(prefix, "present:").pattern).split("\n").filter(Boolean);
  return new Map(keys.map((key) => [key, Number(redisCliOn(redis, "SCARD", key))]));
}

describe.skipIf(!haveRedis)("present:ID stays bounded under tab churn", () => {
  test("one member per node at most while tabs are open, no key once every tab closed", async () => {
    const prefix = uniquePrefix("pkeys");
    const nodes = await spawnCluster(redis, prefix, 2, ["--sessions", "3"]);
    const ctl = await ControlClient.connect(nodes[0]!.privatePort);
    const open: Browser[] = [];
    try {
      for (let round = 0; round < 5; round++) {
        const users = await Promise.all(Array.from({ length: 8 }, () => newUser(ctl)));
        for (const [i, user] of users.entries()) {
          for (let tab = 0; tab < 3; tab++) {
            const b = await Browser.open(nodes[(i + tab) % 2]!.publicUrl);
            b.send(user.token);
            // Every third tab gives up during its login; the others stay for now.
            if ((i + tab) % 3 === 0) b.close();
            else open.push(b);
          }
        }
        await Bun.sleep(500);
        const sets = presentSets(prefix);
        expect(sets.size).toBeGreaterThan(0);
        expect(sets.size).toBeLessThanOrEqual(users.length);
        for (const [key, members] of sets) expect({ key, members: members <= 2 }).toEqual({ key, members: true });
        for (const b of open.splice(0)) b.close();
        await Bun.sleep(500);
        expect([...presentSets(prefix).keys()]).toEqual([]);
      }
    } finally {
      for (const b of open) b.close();
      ctl.close();
      for (const n of nodes) await n.stop();
    }
  }, 60_000);
});
