// Redis (appendfsync always) killed with SIGKILL and restarted while a backend pipelines shouts on a
// cluster node, a webtalk.v2 browser on another node (real processes). Every frame is answered, in
// order; no [ok] shout is delivered twice or out of order (texts only rise); the nodes live on; after
// the restart a shout answered [ok] reaches the browser (both nodes resubscribed), and the channel's
// route count is what it was.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeFrames } from "../src/protocol/frame.ts";
import { ControlClient, newUser } from "./helpers.ts";
import { OffsetPage, spawnCluster } from "./cluster-kit.ts";
import { haveRedis, startRedis, uniquePrefix, type TestRedis } from "./redis-server.ts";

const dir = mkdtempSync(join(tmpdir(), "wt-restart-"));
let redis: TestRedis | undefined;
afterAll(async () => {
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!haveRedis)("Redis restarted mid-pipeline", () => {
  test("replies in order, no duplicate or reordered delivery, delivery resumes", async () => {
    redis = await startRedis({ persistent: dir });
    const prefix = uniquePrefix("restart");
    const nodes = await spawnCluster(redis, prefix, 2);
    const ctl = await ControlClient.connect(nodes[0]!.privatePort);
    const pages: OffsetPage[] = [];
    try {
      const user = await newUser(ctl);
      const channel = await ctl.ok("[newchannel]");
      await ctl.ok(`[join] ${channel}!${user.id}`);
      const page = await OffsetPage.login(nodes[1]!.publicUrl, user.token);
      pages.push(page);
      const chnodes = () => Bun.spawnSync(["redis-cli", "-p", String(redis!.port), "HGETALL", `${prefix}chnodes:${channel}`]).stdout.toString();
      const before = chnodes();
      const replies: string[] = [];
      let next = 0;
      const sendBatch = async (count: number) => {
        ctl.write(encodeFrames(Array.from({ length: count }, () => `[shout] ${channel}!${next++}`)));
        replies.push(...(await ctl.replies.take(count, "replies", 30_000)));
      };
      const run = (async () => {
        for (let i = 0; i < 30; i++) await sendBatch(200);
      })();
      await Bun.sleep(200);
      await redis.stop();
      await Bun.sleep(300);
      await redis.restart();
      await run;
      // Recovery: within a few seconds a shout answers [ok] and reaches the browser. The first [ok] may
      // come before the browser's node has subscribed again (that shout is then a #gap for it), so
      // probes go on until one arrives.
      let recovered = "";
      let answered = "";
      for (let i = 0; i < 40 && !recovered; i++) {
        await Bun.sleep(250);
        const reply = await ctl.call(`[shout] ${channel}!probe${i}`);
        if (reply !== "[ok] message sent") continue;
        answered ||= `probe${i}`;
        for (let wait = 0; wait < 10 && !recovered; wait++) {
          if (page.texts.get(channel)?.includes(`probe${i}`)) recovered = `probe${i}`;
          else await Bun.sleep(50);
        }
      }
      await Bun.sleep(1_000);
      const texts = page.texts.get(channel) ?? [];
      const nums = texts.filter((t) => !t.startsWith("probe")).map(Number);
      const backwards = nums.filter((n, i) => i > 0 && n <= nums[i - 1]!);
      const okCount = replies.filter((r) => r === "[ok] message sent").length;
      console.log(JSON.stringify({ replies: replies.length, ok: okCount, kinds: [...new Set(replies)], delivered: nums.length, answered, recovered }));
      expect({
        replies: replies.length,
        backwards,
        recovered: recovered !== "",
        probeDelivered: texts.includes(recovered),
        chnodes: chnodes(),
        alive: nodes.map((n) => n.proc.exitCode),
      }).toEqual({ replies: 6_000, backwards: [], recovered: true, probeDelivered: true, chnodes: before, alive: [null, null] });
    } finally {
      for (const page of pages) page.browser.close();
      ctl.close();
      for (const node of nodes) await node.stop("SIGKILL");
    }
  }, 60_000);
});
