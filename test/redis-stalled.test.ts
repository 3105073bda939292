// A Redis that stops answering (a stopped process: its socket stays open, nothing comes back). Every
// command fails as `[error] backend unavailable` once it has waited the link's timeout (2 s), counted
// from when it was sent, not from the oldest one still waiting; and the link works again as soon as
// Redis answers.

import { afterAll, describe, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import type { Webtalk } from "../src/server.ts";
import { ControlClient, startTestServer } from "./helpers.ts";
import { haveRedis, startRedis, uniquePrefix, type TestRedis } from "./redis-server.ts";

const TIMEOUT_MS = 2_000; // backends.ts: RedisLink's timeoutMs
let redis: TestRedis | undefined;
let server: Webtalk | undefined;
let ctl: ControlClient | undefined;
let stopped = false;
afterAll(async () => {
  if (stopped) process.kill(redis!.pid, "SIGCONT");
  ctl?.close();
  await server?.stop();
  await redis?.stop();
});

/** `count` replies, each with how long after `since` it came. */
async function replies(client: ControlClient, count: number, since: number): Promise<{ reply: string; ms: number }[]> {
  const out: { reply: string; ms: number }[] = [];
  for (let i = 0; i < count; i++) {
    const reply = await client.replies.next(`reply ${i + 1} of ${count}`, TIMEOUT_MS * 4);
    out.push({ reply, ms: performance.now() - since });
  }
  return out;
}

describe.skipIf(!haveRedis || process.env.WEBTALK_TEST_REDIS_KIT === "cluster")("a Redis that stops answering", () => {
  test("pipelined commands each fail after the timeout from their own send, and the link recovers", async () => {
    redis = await startRedis();
    server = await startTestServer({ redis: redis.url, redisPrefix: uniquePrefix("stall") });
    ctl = await ControlClient.connect(server.private.port);
    const channel = await ctl.ok("[newchannel]");
    process.kill(redis.pid, "SIGSTOP");
    stopped = true;
    const first = performance.now();
    ctl.write(encodeFrames(Array.from({ length: 100 }, (_, i) => `[shout] ${channel}!a${i}`)));
    // A second burst half a timeout later: it must get its own full wait, not the first burst's end.
    await Bun.sleep(TIMEOUT_MS / 2);
    const second = performance.now();
    ctl.write(encodeFrames(Array.from({ length: 100 }, (_, i) => `[shout] ${channel}!b${i}`)));
    const early = await replies(ctl, 100, first);
    const late = await replies(ctl, 100, second);
    expect([...early, ...late].filter(({ reply }) => reply !== "[error] backend unavailable")).toEqual([]);
    // Not before the timeout (a little under it: timers may fire a millisecond early), and not long after.
    for (const { ms } of [...early, ...late]) expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(Math.max(...early.map(({ ms }) => ms))).toBeLessThan(TIMEOUT_MS * 3);
    process.kill(redis.pid, "SIGCONT");
    stopped = false;
    expect(await ctl.call(`[shout] ${channel}!after`)).toBe("[ok] message sent");
  });
});
