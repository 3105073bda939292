// --sessions 3 with --redis (a real redis-server and server process): two more tabs of a user log in at
// once on one node while whispers flow. Once a tab has its first whisper it must get every later one:
// a hole means a whisper the other tabs got was lost for it (a lone browser logging in meanwhile would
// have had it: what the bus brings during a login waits for the login).

import { describe, expect, test } from "bun:test";
import { Browser, ControlClient, loggedIn } from "./helpers.ts";
import { spawnCluster } from "./cluster-kit.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";
import { spawnServer, LOOPBACK, MAIN } from "./process.ts";

const redis = useRedis();

async function rounds(node: { publicUrl: string; privatePort: number }): Promise<string[]> {
  const ctl = await ControlClient.connect(node.privatePort);
  const bad: string[] = [];
  try {
    for (let round = 0; round < 12; round++) {
      const [first, user] = await loggedIn(node, ctl);
      let running = true;
      let n = 0;
      const flow = (async () => {
        while (running) {
          const reply = await ctl.call(`[whisper] ${user.id}!w${++n}`);
          if (reply !== "[ok] message sent") throw new Error(`whisper answered ${reply}`);
        }
        await ctl.ok(`[whisper] ${user.id}!end`);
      })();
      await Bun.sleep(20);
      const tabs = await Promise.all([Browser.open(node.publicUrl), Browser.open(node.publicUrl)]);
      for (const t of tabs) t.send(user.token);
      await Bun.sleep(300);
      running = false;
      await flow;
      for (const [k, b] of [first, ...tabs].entries()) {
        const got: number[] = [];
        for (let m = await b.messages.next("the end marker"); m !== "end"; m = await b.messages.next("the end marker")) got.push(Number(m.slice(1)));
        const holes = got.filter((v, i) => i > 0 && v !== got[i - 1]! + 1);
        if (holes.length > 0 || (k === 0 && got[0] !== 1) || got.at(-1) !== n)
          bad.push(`round ${round} tab ${k}: got ${got.length} of ${n} whispers, first w${got[0]}, jumps before ${holes.slice(0, 5).map((h) => `w${h}`).join(" ")}`);
      }
      for (const b of [first, ...tabs]) b.close();
    }
  } finally {
    ctl.close();
  }
  return bad;
}

describe("--sessions 3: tabs logging in at once while whispers flow", () => {
  test("in memory: every tab gets every whisper from its first one on", async () => {
    const node = await spawnServer(["bun", MAIN, ...LOOPBACK, "--sessions", "3"]);
    try {
      expect(await rounds(node)).toEqual([]);
    } finally {
      await node.stop();
    }
  }, 60_000);

  test.skipIf(!haveRedis)("--redis: every tab gets every whisper from its first one on", async () => {
    const [node] = await spawnCluster(redis, uniquePrefix("rtabs"), 1, ["--sessions", "3"]);
    try {
      expect(await rounds(node!)).toEqual([]);
    } finally {
      await node!.stop();
    }
  }, 60_000);
});
