// A shout sent by another control connection, on a third node, right after a pipelined [join]'s reply
// reaches the browser on the second node; one sent right after a [leave]'s reply never does. Real
// webtalk processes (3 nodes) on one redis-server; 150 fresh channels each way, joins pipelined.

import { describe, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import { ControlClient, loggedIn } from "./helpers.ts";
import { spawnCluster } from "./cluster-kit.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";

const redis = useRedis();

describe.skipIf(!haveRedis)("join/leave on one node, shout from another", () => {
  test("the browser on a third node gets every shout after [join]'s reply and none after [leave]'s", async () => {
    const prefix = uniquePrefix("joinshout");
    const nodes = await spawnCluster(redis, prefix, 3);
    const joiner = await ControlClient.connect(nodes[0]!.privatePort);
    const shouter = await ControlClient.connect(nodes[2]!.privatePort);
    const [browser, user] = await loggedIn({ publicUrl: nodes[1]!.publicUrl }, joiner);
    try {
      const n = 150;
      joiner.write(encodeFrames(Array.from({ length: n }, () => "[newchannel]")));
      const channels = (await joiner.replies.take(n, "channels")).map((r) => r.slice(5));
      // Pipelined joins; each reply triggers at once the shout on the other node's connection.
      joiner.write(encodeFrames(channels.map((c) => `[join] ${c}!${user.id}`)));
      const shoutReplies: Promise<string>[] = [];
      for (const c of channels) {
        expect(await joiner.replies.next("join reply")).toBe("[ok] user joined");
        shouter.write(encodeFrames([`[shout] ${c}!in-${c}`]));
        shoutReplies.push(shouter.replies.next("shout reply", 20_000));
      }
      for (const p of shoutReplies) expect(await p).toBe("[ok] message sent");
      joiner.write(encodeFrames(channels.map((c) => `[leave] ${c}!${user.id}`)));
      for (const c of channels) {
        expect(await joiner.replies.next("leave reply")).toBe("[ok] user leaved");
        shouter.write(encodeFrames([`[shout] ${c}!out-${c}`]));
      }
      await shouter.replies.take(n, "shout replies", 20_000);
      await joiner.ok(`[whisper] ${user.id}!end`).catch(() => undefined);
      const seen: string[] = [];
      for (let m = await browser.messages.next("end", 20_000); m !== "end"; m = await browser.messages.next("end", 20_000)) seen.push(m);
      const missing = channels.filter((c) => !seen.includes(`in-${c}`));
      const after = seen.filter((m) => m.startsWith("out-"));
      expect({ missing, after }).toEqual({ missing: [], after: [] });
    } finally {
      browser.close();
      joiner.close();
      shouter.close();
      for (const node of nodes) await node.stop("SIGKILL");
    }
  }, 60_000);
});
