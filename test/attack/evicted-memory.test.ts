// Item 1: evicted held messages and replay entries must leave memory, not only the counters.
// An attacker (or plain traffic) whispers one large message to each of many offline users: every
// message is held and enters the user's replay window, and the byte caps evict the oldest. The
// server's RSS must stay within its baseline plus the two caps plus a margin.

import { expect, test } from "bun:test";
import { encodeFrames } from "../../src/protocol/frame.ts";
import { ControlClient, createUsers, FULL, MB, report, RssSampler, scale, spawnTarget } from "./kit.ts";

// The short form lowers both caps so that, unfreed, the evicted messages dwarf them; the full form
// runs the findings with default flags.
const CAP = scale(16 * MB, 64 * MB);
const CAP_FLAGS = FULL ? [] : ["--queue-bytes", String(CAP), "--replay-bytes", String(CAP)];
// Full form: the bound. Short form: the baseline (users already created) + both caps + room
// for the per-source bookkeeping the whispers add and garbage not yet collected (before the fix the
// short form ended 260–420 MB above its baseline; after it, 110–150).
const LIMIT_FULL = 350 * MB;
const MARGIN_SHORT = 130 * MB;

/** Whispers one `bytes`-long message to each user, pipelined in batches, every reply awaited. */
async function whisperEach(ctl: ControlClient, users: number[], bytes: number): Promise<void> {
  const body = "m".repeat(bytes);
  for (let done = 0; done < users.length; done += 500) {
    const batch = users.slice(done, done + 500);
    ctl.write(encodeFrames(batch.map((id) => `[whisper] ${id}!${body}`)));
    const replies = await ctl.replies.take(batch.length, "[whisper] replies", 30_000);
    if (replies.some((reply) => !reply.startsWith("[ok]"))) throw new Error(`a whisper failed: ${replies.find((r) => !r.startsWith("[ok]"))}`);
  }
}

test("large whispers to many offline users: evicted held and replay entries are freed, RSS within the caps", async () => {
  await finding("large", scale(20_000, 40_000), 10_000);
}, 120_000);

test("small whispers to very many offline users: RSS within the caps", async () => {
  await finding("many", scale(100_000, 200_000), 1_000);
}, 180_000);

/** Re-runs the finding: `users` offline users, each whispered one `bytes`-long message. */
async function finding(name: string, count: number, bytes: number): Promise<void> {
  const target = await spawnTarget(CAP_FLAGS);
  const ctl = await ControlClient.connect(target.privatePort);
  try {
    const users = await createUsers(ctl, count);
    const rss = new RssSampler(target.proc.pid);
    await whisperEach(ctl, users, bytes);
    const stats = await ctl.call("[stats]");
    // The bound is on what the process keeps: freed messages are garbage until a collection runs, so
    // give the collector a bounded while (unfreed ones never go).
    const limit = FULL ? LIMIT_FULL : rss.baseline + 2 * CAP + MARGIN_SHORT;
    const settling = performance.now();
    const end = await settledRss(rss, limit, 10_000);
    const settleMs = performance.now() - settling;
    rss.stop();
    const held = Number(/held=(\d+)/.exec(stats)?.[1]);
    report(`evicted-memory ${name}`, { users: count, bytes, cap_mb: CAP / MB, baseline_mb: rss.baseline / MB, peak_mb: rss.peak / MB, end_mb: end / MB, settle_ms: settleMs, limit_mb: limit / MB, held });
    expect(end).toBeLessThanOrEqual(limit);
  } finally {
    ctl.close();
    await target.stop().catch(() => target.proc.kill("SIGKILL"));
  }
}

/** The process's RSS once it is at most `limit`, or the last sample after `ms`. */
async function settledRss(rss: RssSampler, limit: number, ms: number): Promise<number> {
  const until = performance.now() + ms;
  for (;;) {
    const now = rss.sample();
    if (now <= limit || performance.now() > until) return now;
    await Bun.sleep(100);
  }
}
