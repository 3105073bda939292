// --sessions 3 (real processes; in memory, and two --redis nodes): [kick] / [killuser] pipelined with a
// shout and a whisper in one write. No tab of the user, on any node, may receive anything sent after
// the kick: each sees only what came before and then its close (4005 / 4004).

import { describe, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import { Browser, ControlClient, loggedIn } from "./helpers.ts";
import { spawnCluster } from "./cluster-kit.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";
import { LOOPBACK, MAIN, spawnServer, type Spawned } from "./process.ts";

const redis = useRedis();

async function scenario(nodes: Spawned[], rounds = 6): Promise<string[]> {
  const ctls = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
  const bad: string[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      const kill = round % 2 === 1;
      const [first, user] = await loggedIn(nodes[0]!, ctls[0]!);
      const channel = await ctls[0]!.ok("[newchannel]");
      await ctls[0]!.ok(`[join] ${channel}!${user.id}`);
      const tabs = [first];
      for (let k = 1; k < 3; k++) {
        const node = nodes[k % nodes.length]!;
        const b = await Browser.open(node.publicUrl, k === 2 ? "webtalk.v2" : undefined);
        b.send(user.token);
        tabs.push(b);
      }
      await Bun.sleep(200);
      const ctl = ctls[round % ctls.length]!;
      ctl.write(
        encodeFrames([
          `[shout] ${channel}!before`,
          kill ? `[killuser] ${user.id}` : `[kick] ${user.id}`,
          `[shout] ${channel}!after`,
          `[whisper] ${user.id}!after`,
        ]),
      );
      const replies = await ctl.replies.take(4, "the replies");
      const closes = await Promise.all(tabs.map((t) => t.closedWithin()));
      for (const [k, t] of tabs.entries()) {
        const seen: string[] = [];
        while (t.messages.size > 0) seen.push(await t.messages.next(""));
        const data = seen.filter((m) => !m.startsWith("#")).map((m) => m.replace(/^\d+:\d+!/, ""));
        const want = kill ? 4004 : 4005;
        if (data.join() !== "before" || closes[k]!.code !== want)
          bad.push(`round ${round} (${kill ? "killuser" : "kick"}) tab ${k}: ${JSON.stringify(seen)} close ${closes[k]!.code}; replies ${replies.join(" / ")}`);
      }
    }
  } finally {
    for (const c of ctls) c.close();
  }
  return bad;
}

describe("--sessions 3: nothing after [kick] / [killuser] reaches any tab", () => {
  test("in memory", async () => {
    const node = await spawnServer(["bun", MAIN, ...LOOPBACK, "--sessions", "3"]);
    try {
      expect(await scenario([node])).toEqual([]);
    } finally {
      await node.stop();
    }
  }, 60_000);

  test.skipIf(!haveRedis)("--redis, tabs on two nodes, commands on either", async () => {
    const nodes = await spawnCluster(redis, uniquePrefix("kick"), 2, ["--sessions", "3"]);
    try {
      expect(await scenario(nodes)).toEqual([]);
    } finally {
      for (const n of nodes) await n.stop();
    }
  }, 60_000);
});
