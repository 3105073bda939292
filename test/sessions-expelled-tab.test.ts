// --sessions 3 (real processes; in memory and with --redis): one tab of a user that stops reading is
// closed as a slow consumer (4006) and one that sends too fast is closed (1008); the user's remaining
// tab keeps getting every shout and whisper, in order, the user stays online, and listeners hear
// neither an [offline] nor a second [online].

import { encodeFrames } from "../src/protocol/frame.ts";
import { describe, expect, test } from "bun:test";
import { Browser, ControlClient, loggedIn, rawWebSocket } from "./helpers.ts";
import { spawnCluster } from "./cluster-kit.ts";
import { haveRedis, uniquePrefix, useRedis } from "./redis-server.ts";
import { LOOPBACK, MAIN, spawnServer, type Spawned } from "./process.ts";

const redis = useRedis();
const SHOUTS = 3000;
const LIMITS = ["--sessions", "3", "--backpressure", "65536", "--max-message-rate", "5"];

function stats(reply: string): Record<string, number> {
  return Object.fromEntries(reply.slice(5).split(" ").map((kv) => [kv.split("=")[0]!, Number(kv.split("=")[1])]));
}

async function scenario(node: Spawned): Promise<void> {
  const ctl = await ControlClient.connect(node.privatePort);
  const listen = await ControlClient.connect(node.privatePort);
  expect(await listen.call("[listen]")).toBe("[ok] listening");
  const events: string[] = [];
  void (async () => {
    for (;;) events.push(await listen.replies.next("", 600_000));
  })().catch(() => undefined);
  try {
    const [keep, user] = await loggedIn(node, ctl);
    const channel = await ctl.ok("[newchannel]");
    await ctl.ok(`[join] ${channel}!${user.id}`);
    const fast = await Browser.open(node.publicUrl);
    fast.send(user.token);
    const stuck = await rawWebSocket(Number(new URL(node.publicUrl).port), new URL(node.publicUrl).pathname, { read: false });
    stuck.sendText(user.token);
    for (let i = 0; i < 200 && stats(await ctl.call("[stats]")).sessions !== 3; i++) await Bun.sleep(10);
    expect(stats(await ctl.call("[stats]")).sessions).toBe(3);
    // The too-fast tab goes first: under a burst of shouts on a loaded machine it could be closed as slow instead.
    for (let i = 0; i < 40; i++) fast.send(`spam ${i}`);
    expect((await fast.closedWithin()).code).toBe(1008);
    // Far more than the kernel's socket buffers take on loopback: the stuck tab's queue passes 64 KiB.
    const big = "x".repeat(4000);
    ctl.write(encodeFrames(Array.from({ length: SHOUTS }, (_, i) => `[shout] ${channel}!s${i + 1}-${big}`)));
    for (const reply of await ctl.replies.take(SHOUTS, "the shouts' replies", 30_000)) expect(reply).toBe("[ok] message sent");
    for (let i = 1; i <= 50; i++) await ctl.ok(`[whisper] ${user.id}!w${i}`);
    await ctl.ok(`[whisper] ${user.id}!end`);
    const got: string[] = [];
    for (let m = await keep.messages.next("end"); m !== "end"; m = await keep.messages.next("end")) got.push(m.split("-")[0]!);
    expect(got).toEqual([...Array.from({ length: SHOUTS }, (_, i) => `s${i + 1}`), ...Array.from({ length: 50 }, (_, i) => `w${i + 1}`)]);
    const s = stats(await ctl.call("[stats]"));
    expect([s.sessions, s.slow_consumers, s.online]).toEqual([1, 1, 1]);
    expect(await ctl.call(`[online] ${user.id}`)).toBe("[ok] 1");
    await Bun.sleep(200);
    expect(events.filter((e) => e.endsWith(` ${user.id}`) && /^\[(online|offline)\]/.test(e))).toEqual([`[online] ${user.id}`]);
    keep.close();
    stuck.socket.end();
  } finally {
    ctl.close();
    listen.close();
  }
}

describe("--sessions 3: a tab closed for breaking a limit leaves the others working", () => {
  test("in memory", async () => {
    const node = await spawnServer(["bun", MAIN, ...LOOPBACK, ...LIMITS]);
    try {
      await scenario(node);
    } finally {
      await node.stop();
    }
  }, 60_000);

  test.skipIf(!haveRedis)("--redis", async () => {
    const [node] = await spawnCluster(redis, uniquePrefix("expel"), 1, LIMITS);
    try {
      await scenario(node!);
    } finally {
      await node!.stop();
    }
  }, 60_000);
});
