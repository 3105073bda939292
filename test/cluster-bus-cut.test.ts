// Breaker test (README "Running several nodes": "Messages published while a node was cut off from
// Redis are not replayed to it (webtalk.v2 browsers recover them with their positions)"; "webtalk.v2":
// every message after the position, or #gap). Two nodes as real processes; Redis drops their pub/sub
// connections (CLIENT KILL TYPE pubsub: a network blip on the subscriber link) while shouts are
// pipelined. The nodes resubscribe and their browsers stay connected, so the shouts published in
// between never reach them and are never recovered: a webtalk.v2 browser sees its offsets skip ahead
// with no #gap (a raw v2 client cannot tell; /webtalk.js only reports onGap), though every one of
// those shouts was answered [ok] and is still in the replay window.

import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { encodeFrames } from "../src/protocol/frame.ts";
import { Browser, ControlClient, newUser, type User } from "./helpers.ts";
import { offsetSkips, spawnCluster } from "./cluster-kit.ts";
import { haveRedis, useRedis, uniquePrefix } from "./redis-server.ts";

const redis = useRedis();

describe.skipIf(!haveRedis)("a node's bus link cut by Redis", () => {
  test("v2 browsers get every [ok] shout, or a #gap (or are closed to resume)", async () => {
    const prefix = uniquePrefix("buscut");
    const nodes = await spawnCluster(redis, prefix, 2);
    const ctl = await ControlClient.connect(nodes[0]!.privatePort);
    const pages: { browser: Browser; got: string[]; closed: boolean }[] = [];
    try {
      const channel = await ctl.ok("[newchannel]");
      for (let i = 0; i < 2; i++) {
        const user: User = await newUser(ctl);
        await ctl.ok(`[join] ${channel}!${user.id}`);
        const browser = await Browser.open(nodes[i]!.publicUrl, "webtalk.v2");
        const page = { browser, got: [] as string[], closed: false };
        browser.ws.addEventListener("message", (event) => page.got.push(String(event.data)));
        browser.ws.addEventListener("close", () => (page.closed = true));
        browser.send(user.token);
        pages.push(page);
      }
      await Bun.sleep(300);
      const shouts = 3000;
      ctl.write(encodeFrames(Array.from({ length: shouts }, (_, i) => `[shout] ${channel}!s${i}`)));
      await Bun.sleep(30);
      const killed = spawnSync("redis-cli", ["-p", String(redis.port), "CLIENT", "KILL", "TYPE", "pubsub"], { encoding: "utf8" }).stdout.trim();
      const replies = await ctl.replies.take(shouts, "the replies", 40_000);
      const acked = replies.filter((r) => r === "[ok] message sent").length;
      await Bun.sleep(1500);
      const report: string[] = [`pub/sub connections killed: ${killed}; shouts answered [ok]: ${acked}`];
      const problems: string[] = [];
      for (const [i, page] of pages.entries()) {
        const offsets = page.got.flatMap((m) => (m.startsWith(`${channel}:`) ? [Number(m.slice(channel.length + 1, m.indexOf("!")))] : []));
        const skips = offsetSkips(offsets);
        const gapNotices = page.got.filter((m) => m.startsWith("#gap"));
        report.push(`browser on node ${i}: ${offsets.length} of ${acked}, skips ${skips.slice(0, 3).join(" ")}, #gap notices ${gapNotices.length}, closed ${page.closed}`);
        if (offsets.length < acked && gapNotices.length === 0 && !page.closed) problems.push(`node ${i}: ${acked - offsets.length} [ok] shouts missing, skips ${skips.slice(0, 3).join(" ")}, no #gap, still open`);
      }
      console.log(report.join("\n"));
      expect(problems).toEqual([]);
    } finally {
      for (const page of pages) page.browser.close();
      ctl.close();
      for (const node of nodes) await node.stop("SIGKILL");
    }
  }, 60_000);
});
