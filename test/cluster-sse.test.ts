// SSE browsers in a cluster: a stream on one node receives what backends send through another, and
// its Last-Event-ID resumes it on a different node, nothing lost or doubled, while messages keep coming.

import { describe, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import { ControlClient, newUser, within } from "./helpers.ts";
import { offsetSkips, spawnCluster } from "./cluster-kit.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";
import { eventsUrl, SseClient, type SseEvent } from "./sse-client.ts";

const redis = useRedis();

/** The event's own SOURCE:OFFSET: the last item of its id. */
function own(event: SseEvent): [string, number] {
  const match = /(u|\d+):(\d+)$/.exec(event.id);
  if (!match) throw new Error(`no position in id ${event.id}`);
  return [match[1]!, Number(match[2])];
}

describe.skipIf(!haveRedis)("SSE in a cluster", () => {
  test("a stream on node A gets B's whispers and shouts; cut mid-traffic, it resumes on node B exactly", async () => {
    const nodes = await spawnCluster(redis, uniquePrefix("sse"), 2);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    const ctlA = await ControlClient.connect(a.privatePort);
    const ctlB = await ControlClient.connect(b.privatePort);
    try {
      const user = await newUser(ctlB);
      const channel = await ctlB.ok("[newchannel]");
      await ctlB.ok(`[join] ${channel}!${user.id}`);
      const first = await SseClient.open(eventsUrl(a.publicUrl, user.token));
      expect(first.response.status).toBe(200);
      await first.events.next("the epoch");
      await within(
        (async () => {
          while ((await ctlB.ok(`[online] ${user.id}`)) !== "1") await Bun.sleep(10);
        })(),
        "node B to see the user online",
      );

      // 200 whispers and 200 shouts through node B, pipelined; the stream is cut after 50 have arrived.
      const total = 200;
      const commands = [];
      for (let i = 1; i <= total; i++) commands.push(`[whisper] ${user.id}!w${i}`, `[shout] ${channel}!s${i}`);
      ctlB.write(encodeFrames(commands));
      // Messages only: the login's at event (its id names every source) is not one of them.
      const seen: SseEvent[] = [];
      while (seen.length < 50) seen.push(await first.next("the first events"));
      first.cut();
      await ctlB.replies.take(commands.length, "the replies", 30_000);

      const again = await SseClient.open(eventsUrl(b.publicUrl, user.token), { "Last-Event-ID": seen.at(-1)!.id });
      expect(again.response.status).toBe(200);
      const offsets = new Map<string, number[]>([["u", []], [channel, []]]);
      for (const event of seen) offsets.get(own(event)[0])!.push(own(event)[1]);
      const wanted = () => offsets.get("u")!.length < total || offsets.get(channel)!.length < total;
      while (wanted()) {
        const event = await again.next("the rest", true);
        if (event.type === "epoch") continue;
        expect(event.type).toBe("message");
        const [source, offset] = own(event);
        expect(event.data).toBe(`${source === "u" ? "w" : "s"}${offset}`);
        offsets.get(source)!.push(offset);
      }
      // Every offset from 1 to 200 once, in order, per source.
      expect(offsetSkips([0, ...offsets.get("u")!])).toEqual([]);
      expect(offsetSkips([0, ...offsets.get(channel)!])).toEqual([]);
      expect(offsets.get("u")!.at(-1)).toBe(total);
      expect(offsets.get(channel)!.at(-1)).toBe(total);
      await ctlA.ok(`[whisper] ${user.id}!live`);
      expect((await again.next("the live whisper")).data).toBe("live");
      expect(again.events.size).toBe(0);
      again.cut();
    } finally {
      ctlA.close();
      ctlB.close();
      for (const node of nodes) await node.stop("SIGKILL");
    }
  }, 90_000);
});
