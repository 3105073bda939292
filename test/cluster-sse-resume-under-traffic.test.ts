// SSE in a cluster while traffic keeps coming: a stream on node A is cut in the middle of a stream of
// whispers and shouts sent through A, and resumes on node B with its Last-Event-ID while A keeps
// publishing. The replay (from Redis) and the live messages (over the bus) meet on B: every offset
// of each source must arrive once, +1 each, nothing lost or doubled.

import { describe, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import { ControlClient, newUser, within } from "./helpers.ts";
import { offsetSkips, spawnCluster } from "./cluster-kit.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";
import { eventsUrl, SseClient, type SseEvent } from "./sse-client.ts";

const redis = useRedis();

function own(event: SseEvent): [string, number] {
  const match = /(u|\d+):(\d+)$/.exec(event.id);
  if (!match) throw new Error(`no position in id ${event.id}`);
  return [match[1]!, Number(match[2])];
}

describe.skipIf(!haveRedis)("SSE resume on the other node under traffic", () => {
  test("cut on A mid-traffic, resumed on B while A keeps publishing: each source's offsets once, +1 each", async () => {
    // A window that holds all the traffic (2,000 per source): what is tested is the replay meeting live
    // messages, not a gap (a slow machine let the publisher run 1,000 past the reader: gaps, by design).
    const nodes = await spawnCluster(redis, uniquePrefix("sse-traffic"), 2, ["--replay-count", "5000"]);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    const ctlA = await ControlClient.connect(a.privatePort);
    try {
      const user = await newUser(ctlA);
      const channel = await ctlA.ok("[newchannel]");
      await ctlA.ok(`[join] ${channel}!${user.id}`);
      const first = await SseClient.open(eventsUrl(a.publicUrl, user.token));
      await first.events.next("the epoch");

      const batches = 40;
      let sent = 0;
      const perBatch = 50;
      const total = batches * perBatch;
      // The traffic: batches of whisper/shout pairs through A, each sent when the previous was answered.
      const sending = (async () => {
        for (let b = 0; b < batches; b++) {
          const commands: string[] = [];
          for (let i = 1; i <= perBatch; i++) {
            const n = b * perBatch + i;
            commands.push(`[whisper] ${user.id}!w${n}`, `[shout] ${channel}!s${n}`);
          }
          ctlA.write(encodeFrames(commands));
          const replies = await ctlA.replies.take(commands.length, "the replies", 30_000);
          expect(replies.every((r) => r.startsWith("[ok]"))).toBe(true);
          sent++;
        }
      })();
      // What the browser had processed when the network went: the id it resumes from is the last of these.
      const seen: SseEvent[] = await first.events.take(120, "the first events", 30_000);
      first.cut();
      const again = await SseClient.open(eventsUrl(b.publicUrl, user.token), { "Last-Event-ID": seen.at(-1)!.id });
      expect(again.response.status).toBe(200);
      // The resume met traffic still being sent through A.
      expect(sent).toBeLessThan(batches);
      const offsets = new Map<string, number[]>([["u", []], [channel, []]]);
      for (const event of seen) if (event.type === "message") offsets.get(own(event)[0])!.push(own(event)[1]);
      const wanted = () => offsets.get("u")!.length < total || offsets.get(channel)!.length < total;
      const gaps: string[] = [];
      while (wanted()) {
        const event = await again.next("the rest", true).catch((error: Error) => {
          const summary = [...offsets].map(([source, list]) => `${source}: ${list.length} got, skips ${offsetSkips([0, ...list]).slice(0, 5).join(" ")}`);
          throw new Error(`${error.message}; ${summary.join("; ")}`);
        });
        if (event.type === "epoch") continue;
        if (event.type === "gap") {
          gaps.push(event.data);
          continue;
        }
        const [source, offset] = own(event);
        expect(event.data).toBe(`${source === "u" ? "w" : "s"}${offset}`);
        offsets.get(source)!.push(offset);
      }
      await within(sending, "the traffic", 60_000);
      expect(gaps).toEqual([]);
      expect(offsetSkips([0, ...offsets.get("u")!])).toEqual([]);
      expect(offsetSkips([0, ...offsets.get(channel)!])).toEqual([]);
      // Nothing more (no duplicate after the last).
      const ctlB = await ControlClient.connect(b.privatePort);
      await ctlB.ok(`[whisper] ${user.id}!live`);
      expect((await again.next("the live whisper")).data).toBe("live");
      ctlB.close();
      again.cut();
    } finally {
      ctlA.close();
      for (const node of nodes) await node.stop("SIGKILL");
    }
  }, 120_000);
});
