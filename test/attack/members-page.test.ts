// Item 7, the [members] half: paging a channel's members must cost in proportion to the page
// returned, not to the channel. A backend asks both a large and a small channel for their last
// hundred members (the same small page from each), in pipelined batches, alternating, timing each
// batch's round trip (one write: the server's own cost, not the network's), while a canary backend pings.

import { expect, test } from "bun:test";
import { encodeFrames } from "../../src/protocol/frame.ts";
import { canaryBackend, ControlClient, createUsers, percentile, report, scale, spawnTarget } from "./kit.ts";

// Channel 1 holds every user; the small channel holds the first SMALL of them.
const LARGE = scale(300_000, 1_000_000);
const SMALL = 10_000;
const PAGE = 100;
const BATCH = 200;
const ROUNDS = 15;

test("[members] costs in proportion to the page, not to the channel's size", async () => {
  const target = await spawnTarget();
  const ctl = await ControlClient.connect(target.privatePort);
  try {
    const users = await createUsers(ctl, LARGE);
    const small = Number(await ctl.ok("[newchannel]"));
    ctl.write(encodeFrames(users.slice(0, SMALL).map((id) => `[join] ${small}!${id}`)));
    await ctl.replies.take(SMALL, "[join] replies", 30_000);
    const canary = await canaryBackend(target.privatePort, { everyMs: 5 });
    const times = { small: [] as number[], large: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      times.small.push(await timedPages(ctl, small, users[SMALL - PAGE - 1]!, PAGE));
      times.large.push(await timedPages(ctl, 1, users[LARGE - PAGE - 1]!, PAGE));
    }
    const ping = await canary.stop();
    const smallMs = percentile(times.small, 50);
    const largeMs = percentile(times.large, 50);
    report("members-page", { large: LARGE, small: SMALL, page: PAGE, small_batch_ms: smallMs, large_batch_ms: largeMs, ratio: largeMs / smallMs, ping });
    // In proportion to the channel, the ratio would approach LARGE / SMALL (30 in the short form).
    expect(largeMs / smallMs).toBeLessThanOrEqual(3);
    expect(ping.unanswered).toBe(0);
  } finally {
    ctl.close();
    await target.stop().catch(() => target.proc.kill("SIGKILL"));
  }
}, 120_000);

/** BATCH `[members] CHANNEL!AFTER` in one write, in ms until the last reply; each page must hold `expected` IDs. */
async function timedPages(ctl: ControlClient, channel: number, after: number, expected: number): Promise<number> {
  const sent = performance.now();
  ctl.write(encodeFrames(Array.from({ length: BATCH }, () => `[members] ${channel}!${after}`)));
  const pages = await ctl.replies.take(BATCH, "[members] replies", 30_000);
  const ms = performance.now() - sent;
  const wrong = pages.find((page) => page.slice(5).split(",").length !== expected);
  if (wrong !== undefined) throw new Error(`[members] ${channel}!${after} answered ${wrong.slice(0, 80)}`);
  return ms;
}
