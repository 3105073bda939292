// Issue 14: when Redis loses webtalk's data, the first node to notice discards every key under the
// prefix before a new generation is established. With a large cluster state that wipe is real work
// (SCAN + UNLINK in batches): it must not stall the nodes — a canary backend on the other node keeps
// getting its [ping] answered — nor grow them, and the cluster must come back: [newuser] works again
// under a new epoch, and the old users are gone. Measured from outside: the other node's RSS from
// /proc and the canary's latency while the wipe runs.

import { expect, test } from "bun:test";
import { canaryBackend, ControlClient, createUsers, MB, report, RssSampler, scale, spawnTarget, within } from "./kit.ts";
import { haveRedis, link, uniquePrefix, useRedis } from "../redis-server.ts";

const redis = useRedis();
const USERS = scale(50_000, 200_000);

test.skipIf(!haveRedis)("a wipe of a large cluster state neither stalls nor grows the nodes, and the cluster comes back", async () => {
  const prefix = uniquePrefix("wipe");
  const flags = ["--redis", redis.url, "--redis-prefix", prefix, "--lease", "3"];
  const [a, b] = [await spawnTarget(flags), await spawnTarget(flags)];
  const ctlA = await ControlClient.connect(a.privatePort);
  const ctlB = await ControlClient.connect(b.privatePort);
  const l = await link(redis);
  try {
    const users = await createUsers(ctlA, USERS);
    const epoch = / epoch=(\S+)$/.exec(await ctlB.ok("[stats]"))![1]!;
    const rss = new RssSampler(b.proc.pid);
    const canary = await canaryBackend(b.privatePort, { everyMs: 5 });
    const started = performance.now();
    await l.call("DEL", [`${prefix}generation`]);
    // Back when a [newuser] is answered again and the epoch is a new one.
    let after = epoch;
    await within(
      (async () => {
        for (;;) {
          const reply = await ctlB.call("[newuser]");
          if (reply.startsWith("[ok]")) after = / epoch=(\S+)$/.exec(await ctlB.ok("[stats]"))![1]!;
          if (after !== epoch) return;
          await Bun.sleep(20);
        }
      })(),
      "the cluster to come back after the wipe",
      60_000,
    );
    const backMs = performance.now() - started;
    const ping = await canary.stop();
    rss.stop();
    report("redis-wipe", { users: USERS, back_ms: Math.round(backMs), peak_growth_mb: rss.growth / MB, ping });
    expect(await ctlA.call(`[online] ${users[0]}`)).toBe(`[error] no such user ${users[0]}`);
    expect(Number(await l.call("DBSIZE", []))).toBeLessThan(100);
    expect(ping.unanswered).toBe(0);
    expect(rss.growth).toBeLessThan(64 * MB);
  } finally {
    l.close();
    ctlA.close();
    ctlB.close();
    for (const node of [a, b]) await node.stop().catch(() => node.proc.kill("SIGKILL"));
  }
}, 180_000);
