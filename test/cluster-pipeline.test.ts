// Issue 15: a control connection pipelines cluster whispers and shouts (one script each, sent without
// waiting for the previous reply). Order must hold all the same: per source on every node's browsers,
// replies in frame order, across an operator's SCRIPT FLUSH, and while Redis is away.

import { afterAll, describe, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import type { Webtalk } from "../src/server.ts";
import { offsetSkips, OffsetPage } from "./cluster-kit.ts";
import { ControlClient, newUser, startTestServer, within, type User } from "./helpers.ts";
import { haveRedis, startRedis, uniquePrefix, useRedis } from "./redis-server.ts";

const redis = useRedis();
const started: Webtalk[] = [];
const clients: ControlClient[] = [];
const pages: OffsetPage[] = [];
afterAll(async () => {
  for (const page of pages) page.browser.close();
  for (const ctl of clients) ctl.close();
  for (const node of started) await node.stop();
});

async function node(url: string, prefix: string): Promise<Webtalk> {
  const server = await startTestServer({ redis: url, redisPrefix: prefix, lease: 2, replayCount: 20_000 });
  started.push(server);
  return server;
}

async function control(server: Webtalk): Promise<ControlClient> {
  const ctl = await ControlClient.connect(server.private.port);
  clients.push(ctl);
  return ctl;
}

/** A v2 page of `user` on `server`, in `channel` when given. */
async function page(server: Webtalk, ctl: ControlClient, user: User, channel?: string): Promise<OffsetPage> {
  if (channel) await ctl.ok(`[join] ${channel}!${user.id}`);
  const opened = await OffsetPage.login(server.publicUrl, user.token);
  pages.push(opened);
  return opened;
}

/** Resolves once `page` holds `count` messages of `source` (bounded). */
function received(page: OffsetPage, source: string, count: number): Promise<void> {
  const have = () => (page.offsets.get(source)?.length ?? 0) >= count;
  if (have()) return Promise.resolve();
  const { promise, resolve } = Promise.withResolvers<void>();
  const check = () => {
    if (!have()) return;
    page.browser.ws.removeEventListener("message", check);
    resolve();
  };
  page.browser.ws.addEventListener("message", check);
  return within(promise, `${count} messages of ${source} (have ${page.offsets.get(source)?.length ?? 0})`, 30_000);
}

/** Whether each sender's texts (`S-N`) come in the order of N. */
function outOfOrder(texts: string[]): string[] {
  const last = new Map<string, number>();
  const out: string[] = [];
  for (const text of texts) {
    const [sender, n] = text.split("-") as [string, string];
    if (Number(n) <= (last.get(sender) ?? -1)) out.push(text);
    last.set(sender, Number(n));
  }
  return out;
}

describe.skipIf(!haveRedis)("pipelined cluster commands", () => {
  test("two connections on two nodes each pipeline 5,000 shouts and 5,000 whispers: every browser sees +1 offsets, each connection's messages in send order", async () => {
    const prefix = uniquePrefix("pipe");
    const nodes = [await node(redis.url, prefix), await node(redis.url, prefix)];
    const ctls = [await control(nodes[0]!), await control(nodes[1]!)];
    const channel = await ctls[0]!.ok("[newchannel]");
    const target = await newUser(ctls[0]!);
    const listeners: OffsetPage[] = [];
    for (const n of [0, 1]) listeners.push(await page(nodes[n]!, ctls[0]!, await newUser(ctls[0]!), channel));
    const whispered = await page(nodes[1]!, ctls[0]!, target, channel);
    listeners.push(whispered);
    const PER = 5_000;
    const replies = ctls.map((ctl, k) => {
      const frames: string[] = [];
      for (let i = 0; i < PER; i++) frames.push(`[shout] ${channel}!${k}-${i}`, `[whisper] ${target.id}!${k}-${i}`);
      ctl.write(encodeFrames(frames));
      return ctl.replies.take(frames.length, `connection ${k}'s replies`, 30_000);
    });
    for (const answered of await Promise.all(replies)) expect(new Set(answered)).toEqual(new Set(["[ok] message sent"]));
    for (const listener of listeners) {
      await received(listener, channel, 2 * PER);
      const offsets = listener.offsets.get(channel)!;
      expect({ count: offsets.length, skips: offsetSkips(offsets).slice(0, 3), late: outOfOrder(listener.texts.get(channel)!).slice(0, 3) }).toEqual({
        count: 2 * PER,
        skips: [],
        late: [],
      });
    }
    await received(whispered, "u", 2 * PER);
    const whispers = whispered.offsets.get("u")!;
    expect({ count: whispers.length, skips: offsetSkips(whispers).slice(0, 3), late: outOfOrder(whispered.texts.get("u")!).slice(0, 3) }).toEqual({
      count: 2 * PER,
      skips: [],
      late: [],
    });
  }, 90_000);

  test("replies come in frame order across synchronous, pipelined and barrier commands; unknown users and channels answer as before", async () => {
    const server = await node(redis.url, uniquePrefix("mix"));
    const ctl = await control(server);
    const channel = await ctl.ok("[newchannel]");
    const user = await newUser(ctl);
    const frames = [
      "[ping]",
      `[shout] ${channel}!a`,
      `[whisper] ${user.id}!b`,
      "[shout] 987654321!x",
      "[whisper] 987654321!x",
      "[ping]",
      `[join] ${channel}!${user.id}`,
      `[shout] ${channel}!c`,
      "[shout] nonsense",
      `[count] ${channel}`,
      `[whisper] ${user.id}!d`,
      "[whisper] x!y",
      "[ping]",
    ];
    ctl.write(encodeFrames(frames));
    expect(await ctl.replies.take(frames.length, "the replies")).toEqual([
      "[ok] pong",
      "[ok] message sent",
      "[ok] message queued",
      "[error] no such channel 987654321",
      "[error] no such user 987654321",
      "[ok] pong",
      "[ok] user joined",
      "[ok] message sent",
      expect.stringMatching(/^\[error\] /),
      "[ok] 1!0",
      "[ok] message queued",
      expect.stringMatching(/^\[error\] /),
      "[ok] pong",
    ]);
    expect(ctl.replies.size).toBe(0);
  });

  test("an operator's SCRIPT FLUSH mid-pipeline fails the shouts that met it, runs the rest, and keeps the order", async () => {
    const server = await node(redis.url, uniquePrefix("flush"));
    const ctl = await control(server);
    const channel = await ctl.ok("[newchannel]");
    // The shout script is known to the node before the flush: otherwise, on a slow machine, its first
    // use could load it after the flush, and nothing would meet the flushed Redis.
    expect(await ctl.call(`[shout] ${channel}!before the listener`)).toBe("[ok] message sent");
    const listener = await page(server, ctl, await newUser(ctl), channel);
    const batch = (from: number) => Array.from({ length: 2_000 }, (_, i) => `[shout] ${channel}!0-${from + i}`);
    ctl.write(encodeFrames(batch(0)));
    const first = ctl.replies.take(2_000, "the first batch's replies", 30_000);
    // While the first batch runs, the scripts are flushed; the second batch meets the flushed Redis.
    // On the Redis Cluster kit every master forgets them (each holds some of the shards).
    for (const port of redis.masters ?? [redis.port]) {
      const operator = new Bun.RedisClient(`redis://127.0.0.1:${port}`);
      try {
        expect(await operator.send("SCRIPT", ["FLUSH"])).toBe("OK");
      } finally {
        operator.close();
      }
    }
    ctl.write(encodeFrames(batch(2_000)));
    const replies = [...(await first), ...(await ctl.replies.take(2_000, "the second batch's replies", 30_000))];
    const kinds = new Set(replies);
    expect([...kinds].sort()).toEqual(["[error] backend unavailable", "[ok] message sent"]);
    const sent = replies.flatMap((reply, i) => (reply === "[ok] message sent" ? [`0-${i}`] : []));
    await received(listener, channel, sent.length);
    expect(await ctl.call(`[shout] ${channel}!0-4000`)).toBe("[ok] message sent");
    await received(listener, channel, sent.length + 1);
    // Exactly what was answered sent, in send order, numbered without a hole.
    expect(listener.texts.get(channel)).toEqual([...sent, "0-4000"]);
    expect(offsetSkips(listener.offsets.get(channel)!)).toEqual([]);
  }, 60_000);

  test("while Redis is away, every pipelined command answers [error] backend unavailable, once and in order", async () => {
    const own = await startRedis();
    try {
      const server = await node(own.url, uniquePrefix("away"));
      const ctl = await control(server);
      const channel = await ctl.ok("[newchannel]");
      const user = await newUser(ctl);
      await own.stop();
      const frames: string[] = [];
      for (let i = 0; i < 300; i++) frames.push(`[shout] ${channel}!${i}`, `[whisper] ${user.id}!${i}`, "[ping]");
      ctl.write(encodeFrames(frames));
      const replies = await ctl.replies.take(frames.length, "the replies", 20_000);
      expect(replies).toEqual(frames.map((f) => (f === "[ping]" ? "[ok] pong" : "[error] backend unavailable")));
      expect(await ctl.call("[ping]")).toBe("[ok] pong");
      expect(ctl.replies.size).toBe(0);
    } finally {
      await own.stop();
    }
  }, 60_000);
});
