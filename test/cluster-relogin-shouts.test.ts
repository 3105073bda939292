// A user whose browser moves between two nodes again and again (each login replaces the last) while a
// backend pipelines shouts to its channel and whispers to it: every webtalk.v2 session must see each
// source's offsets rise by exactly one from its first message to its close (nothing missed while
// logged in), and the texts in send order. Real webtalk processes on one redis-server.

import { describe, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import { ControlClient, newUser } from "./helpers.ts";
import { OffsetPage, offsetSkips, spawnCluster } from "./cluster-kit.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";

const redis = useRedis();

describe.skipIf(!haveRedis)("re-login across nodes while traffic flows", () => {
  test("no session misses a shout or whisper between its first message and its close", async () => {
    const prefix = uniquePrefix("relogin");
    const nodes = await spawnCluster(redis, prefix, 2);
    const ctls = await Promise.all(nodes.map((n) => ControlClient.connect(n.privatePort)));
    const pages: OffsetPage[] = [];
    let sending = true;
    try {
      const user = await newUser(ctls[0]!);
      const channel = await ctls[0]!.ok("[newchannel]");
      await ctls[0]!.ok(`[join] ${channel}!${user.id}`);
      // Two backends, one per node: shouts from A, whispers from B, pipelined in bursts.
      const pump = async (ctl: ControlClient, frame: (i: number) => string) => {
        let i = 0;
        while (sending) {
          const frames = Array.from({ length: 50 }, () => frame(i++));
          ctl.write(encodeFrames(frames));
          const replies = await ctl.replies.take(50, "replies", 20_000);
          expect(replies.filter((r) => !r.startsWith("[ok] message"))).toEqual([]);
        }
        return i;
      };
      const shouts = pump(ctls[0]!, (i) => `[shout] ${channel}!s${i}`);
      const whispers = pump(ctls[1]!, (i) => `[whisper] ${user.id}!w${i}`);
      for (let round = 0; round < 30; round++) {
        pages.push(await OffsetPage.login(nodes[round % 2]!.publicUrl, user.token));
        await Bun.sleep(80 + (round % 5) * 20);
      }
      sending = false;
      await Promise.all([shouts, whispers]);
      await Bun.sleep(500);
      const skips: Record<string, string[]> = {};
      for (const [i, page] of pages.entries()) {
        for (const [source, offsets] of page.offsets) {
          const s = offsetSkips(offsets);
          if (s.length > 0) skips[`session ${i} (node ${i % 2}) source ${source === "u" ? "u" : "c"}`] = s.slice(0, 3);
        }
        for (const [source, texts] of page.texts) {
          const nums = texts.map((t) => Number(t.slice(1)));
          const bad = offsetSkips(nums);
          if (bad.length > 0) skips[`session ${i} texts ${source === "u" ? "u" : "c"}`] = bad.slice(0, 3);
        }
      }
      const received = pages.reduce((n, p) => n + [...p.offsets.values()].reduce((m, l) => m + l.length, 0), 0);
      expect(received).toBeGreaterThan(100);
      expect(skips).toEqual({});
    } finally {
      sending = false;
      for (const page of pages) page.browser.close();
      for (const ctl of ctls) ctl.close();
      for (const node of nodes) await node.stop("SIGKILL");
    }
  }, 60_000);
});
