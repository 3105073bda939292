// Item 3 of issue 13: one user's token logs in again and again with webtalk.v2 and an old position,
// on sockets that never read. Each login must not build (or queue) the whole replay window.

import { expect, test } from "bun:test";
import { Browser, canaryBackend, canaryBrowser, ControlClient, learnEpoch, MB, newUser, report, RssSampler, scale, spawnTarget } from "./kit.ts";
import { rawWebSocket } from "../helpers.ts";

const SHOUTS = 1_000;
const SHOUT_BYTES = 60_000;

test("re-logins replaying a 60 MB channel window on unread sockets keep RSS and latency bounded", async () => {
  const target = await spawnTarget(["--replay-bytes", String(512 * MB), "--shutdown-timeout", "5"]);
  let exitedWithin = Infinity;
  try {
    const ctl = await ControlClient.connect(target.privatePort);
    const user = await newUser(ctl);
    // The epoch, as the attacker learns it: from a login of its own.
    const epoch = await learnEpoch(target.publicUrl, user.token);
    const filler = "x".repeat(SHOUT_BYTES);
    for (let i = 0; i < SHOUTS; i++) ctl.write(new TextEncoder().encode(frameOf(`[shout] 1!${i}:${filler}`)));
    for (let i = 0; i < SHOUTS; i++) await ctl.replies.next(`shout ${i}`, 30_000);

    const rss = new RssSampler(target.proc.pid);
    const backend = await canaryBackend(target.privatePort);
    const browser = await canaryBrowser(target);
    const port = Number(new URL(target.publicUrl).port);
    const path = new URL(target.publicUrl).pathname;
    const sockets = scale(8, 20);
    const attackMs = scale(5_000, 10_000);
    const open: Awaited<ReturnType<typeof rawWebSocket>>[] = [];
    const started = performance.now();
    let logins = 0;
    // `sockets` attackers at once, each logging in again as soon as its previous login is sent; the old
    // sockets stay open and unread (the server closes them as replaced, if it can).
    const attacker = async () => {
      while (performance.now() - started < attackMs) {
        const ws = await rawWebSocket(port, path, { headers: { "Sec-WebSocket-Protocol": "webtalk.v2" }, read: false });
        ws.sendText(`${user.token}!${epoch}!1:0`);
        logins++;
        open.push(ws);
        await Bun.sleep(20);
      }
    };
    await Promise.all(Array.from({ length: sockets }, attacker));
    const back = await backend.stop();
    const whispers = await browser.stop();
    rss.stop();
    const stopped = performance.now();
    await target.stop().catch(() => undefined);
    exitedWithin = (performance.now() - stopped) / 1000;
    for (const ws of open) ws.socket.end();
    report("replay-amplifier", { logins, sockets, peakMB: rss.peak / MB, baselineMB: rss.baseline / MB, backend: back, browser: whispers, sigtermS: exitedWithin });
    ctl.close();
    expect(rss.peak).toBeLessThanOrEqual(600 * MB);
    expect(back.unanswered + whispers.unanswered).toBe(0);
    expect(back.p99).toBeLessThanOrEqual(1_000);
    expect(whispers.p99).toBeLessThanOrEqual(1_000);
    expect(exitedWithin).toBeLessThanOrEqual(15);
  } finally {
    target.proc.kill("SIGKILL");
  }
}, 120_000);

function frameOf(payload: string): string {
  const bytes = Buffer.byteLength(payload);
  return `${String(bytes).padStart(5, "0")}${payload}`;
}

test("a reading browser gets a replay far larger than the budget, then live shouts sent meanwhile, exactly once and in order", async () => {
  // --backpressure 64 KiB: the replay goes out 32 KiB at a time, paced by the socket's drain.
  const target = await spawnTarget(["--backpressure", String(64 * 1024)]);
  try {
    const ctl = await ControlClient.connect(target.privatePort);
    const user = await newUser(ctl);
    const epoch = await learnEpoch(target.publicUrl, user.token);
    const text = "y".repeat(20_000);
    const before = 400;
    const during = 200;
    for (let i = 1; i <= before; i++) ctl.write(new TextEncoder().encode(frameOf(`[shout] 1!${i}:${text}`)));
    for (let i = 1; i <= before; i++) await ctl.replies.next(`shout ${i}`);
    const page = await Browser.open(target.publicUrl, "webtalk.v2");
    page.send(`${user.token}!${epoch}!1:0`);
    expect(await page.messages.next("the epoch")).toBe(`#epoch ${epoch}`);
    for (let i = before + 1; i <= before + during; i++) ctl.write(new TextEncoder().encode(frameOf(`[shout] 1!${i}:${text}`)));
    const offsets: number[] = [];
    while (offsets.length < before + during) {
      const message = await page.messages.next("a shout", 10_000);
      const match = /^1:(\d+)!(\d+):/.exec(message);
      if (!match) throw new Error(`unexpected ${message.slice(0, 40)}`);
      expect(match[1]).toBe(match[2]!);
      offsets.push(Number(match[1]));
    }
    expect(offsets).toEqual(Array.from({ length: before + during }, (_, i) => i + 1));
    page.close();
    ctl.close();
  } finally {
    await target.stop();
  }
}, 60_000);
