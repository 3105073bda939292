// Found by an outside review of issue 13's bounds: Bun answers every WebSocket ping with a pong by
// itself, so sockets that ping and never read piled pongs up to Bun's hard cap (16 MiB each), unseen by
// the slow-consumer watchdog and the message rate limit — with one token, or none (before login).

import { afterEach, expect, test } from "bun:test";
import net from "node:net";
import { canaryBackend, ControlClient, MB, newUser, report, RssSampler, scale, spawnTarget, type Spawned } from "./kit.ts";

let target: Spawned | undefined;
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await target?.stop("SIGKILL");
  target = undefined;
});

const SOCKETS = scale(10, 60);
const PER_SOCKET = 30 * MB;
// Before the fix: +164 MB for 10 logged-in sockets, +528 MB for 60 before login.
const GROWTH_BOUND = scale(40, 100) * MB;

/** Masked 125-byte pings, `count` of them back to back. */
function pings(count: number): Buffer {
  const one = Buffer.alloc(6 + 125);
  one[0] = 0x89;
  one[1] = 0x80 | 125;
  return Buffer.concat(Array.from({ length: count }, () => one));
}

function textFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const frame = Buffer.alloc(6 + payload.length);
  frame[0] = 0x81;
  frame[1] = 0x80 | payload.length;
  payload.copy(frame, 6);
  return frame;
}

/** An upgraded socket that never reads another byte; logged in with `token` when given. */
async function nonReader(url: URL, token?: string): Promise<net.Socket> {
  const socket = net.connect(Number(url.port), "127.0.0.1");
  sockets.push(socket);
  socket.on("error", () => undefined);
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  socket.write(
    `GET ${url.pathname} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  await new Promise<void>((resolve) => socket.once("data", () => (socket.pause(), resolve())));
  if (token) socket.write(textFrame(token));
  return socket;
}

for (const loggedIn of [true, false]) {
  test(`pings from sockets that never read (${loggedIn ? "logged in" : "before login"}) cannot pile up pongs`, async () => {
    target = await spawnTarget();
    const url = new URL(target.publicUrl);
    const ctl = await ControlClient.connect(target.privatePort);
    const canary = await canaryBackend(target.privatePort);
    const rss = new RssSampler(target.proc.pid);
    const flooders = await Promise.all(
      Array.from({ length: SOCKETS }, async () => nonReader(url, loggedIn ? (await newUser(ctl)).token : undefined)),
    );
    const chunk = pings(8_000);
    const until = Date.now() + scale(4_000, 10_000);
    await Promise.all(
      flooders.map(async (socket) => {
        for (let sent = 0; sent < PER_SOCKET && Date.now() < until && !socket.destroyed; sent += chunk.length) {
          if (!socket.write(chunk)) await new Promise<void>((resolve) => setTimeout(resolve, 50));
        }
      }),
    );
    await Bun.sleep(1_000);
    rss.stop();
    const latency = await canary.stop();
    const online = Number(/online=(\d+)/.exec(await ctl.call("[stats]"))?.[1]);
    ctl.close();
    report(`ping flood ${loggedIn ? "logged in" : "before login"}`, { sockets: SOCKETS, baselineMB: rss.baseline / MB, peakMB: rss.peak / MB, growthMB: rss.growth / MB, online, canary: latency });
    expect(rss.growth).toBeLessThanOrEqual(GROWTH_BOUND);
    expect(online).toBe(0);
  }, 60_000);
}
