// Redis lost webtalk's data (FLUSHALL) under two node processes. One node has noticed (an ID it was
// asked for was refused) and re-established the data; the other notices only at its next lease
// renewal (up to a third of --lease later). In that window a webtalk.v2 page that was handed a new
// token (what the README tells backends to do) resumes on the second node with the positions it had:
// it must be told of a gap, never replayed the new data's offsets as if they followed its old ones.
// Nor may a browser of a user that no longer exists, still open on that node, receive the new data's
// shouts to channel 1 (the new users' global channel).

import { expect, test } from "bun:test";
import { Browser, ControlClient, loggedIn, newUser, within } from "./helpers.ts";
import { replayEpoch } from "./epochs.ts";
import { spawnNode } from "./cluster-kit.ts";
import type { Spawned } from "./process.ts";
import { haveRedis, link, useRedis, uniquePrefix } from "./redis-server.ts";

const redis = useRedis();

function node(prefix: string): Promise<Spawned> {
  return spawnNode(redis, prefix, 30);
}

test.skipIf(!haveRedis)("a v2 page resuming on a node that has not yet noticed the data loss gets #gap, not the new data's offsets", async () => {
  const prefix = uniquePrefix("v2win");
  const a = await node(prefix);
  const b = await node(prefix);
  const ctlA = await ControlClient.connect(a.privatePort);
  try {
    const before = await newUser(ctlA);
    const page = await Browser.open(b.publicUrl, "webtalk.v2");
    page.send(before.token);
    const epoch = await replayEpoch(page);
    for (let i = 1; i <= 5; i++) await ctlA.ok(`[shout] 1!old-${i}`);
    expect(await page.messages.take(5, "channel 1, offsets 1..5")).toEqual(["1:1!old-1", "1:2!old-2", "1:3!old-3", "1:4!old-4", "1:5!old-5"]);
    page.close();

    const l = await link(redis);
    await l.call("FLUSHALL", []);
    l.close();

    // Node A is asked for an ID: refused, it notices and re-establishes; then it issues one.
    const token = await within(
      (async () => {
        for (;;) {
          const reply = await ctlA.call("[newuser]");
          if (reply.startsWith("[ok] ")) return reply.slice(5);
          await Bun.sleep(20);
        }
      })(),
      "[newuser] on node A after the loss",
    );
    for (let i = 1; i <= 8; i++) await ctlA.ok(`[shout] 1!new-${i}`);

    // The page, with its new token and its old positions, lands on node B.
    const again = await Browser.open(b.publicUrl, "webtalk.v2");
    again.send(`${token}!${epoch}!1:5`);
    const notice = await again.messages.next("#epoch");
    const next = await again.messages.next("what follows the epoch");
    again.close();
    expect({ notice, next }).not.toEqual({ notice: `#epoch ${epoch}`, next: "1:6!new-6" });
    expect(next).toBe("#gap 1");
  } finally {
    ctlA.close();
    await a.stop("SIGKILL");
    await b.stop("SIGKILL");
  }
}, 60_000);

test.skipIf(!haveRedis)("a browser of a user lost with the data gets none of the new data's channel 1 shouts while its node has not noticed", async () => {
  const prefix = uniquePrefix("livewin");
  const a = await node(prefix);
  const b = await node(prefix);
  const ctlA = await ControlClient.connect(a.privatePort);
  try {
    const gone = await newUser(ctlA);
    const [page] = await loggedIn({ publicUrl: b.publicUrl }, ctlA, gone);
    await ctlA.ok(`[shout] 1!before`);
    expect(await page.messages.next("the shout before the loss")).toBe("before");
    const got: string[] = [];
    page.ws.addEventListener("message", (event) => got.push(String(event.data)));

    const l = await link(redis);
    await l.call("FLUSHALL", []);
    l.close();
    await within(
      (async () => {
        while (!(await ctlA.call("[newuser]")).startsWith("[ok] ")) await Bun.sleep(20);
      })(),
      "[newuser] on node A after the loss",
    );
    await ctlA.ok("[shout] 1!for the new users only");
    await Bun.sleep(500);
    page.close();
    expect(got).toEqual([]);
  } finally {
    ctlA.close();
    await a.stop("SIGKILL");
    await b.stop("SIGKILL");
  }
}, 60_000);
