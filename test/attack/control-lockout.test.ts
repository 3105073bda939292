// Issue 13, item 6: whoever reaches the control port must not lock out the backends. Connections that
// never authenticate are closed after --auth-timeout and cannot take the slots of authenticated
// backends; a frame that never completes is closed after --frame-timeout; a failed [auth] is logged
// and slowed.

import { afterEach, expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { encodeFrame, FrameDecoder } from "../../src/protocol/frame.ts";
import { ControlClient, FULL, report, scale, spawnTarget, within, type Spawned } from "./kit.ts";

let target: Spawned | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await target?.stop("SIGKILL");
  target = undefined;
});

const SECRET = "s3cret-for-the-lockout-test";
// The short form uses small timeouts and asserts in proportion; the full form uses the defaults.
const AUTH_TIMEOUT = scale(1, 5);
const FRAME_TIMEOUT = scale(2, 30);
const timeouts: Record<string, string> = FULL ? {} : { WEBTALK_AUTH_TIMEOUT: String(AUTH_TIMEOUT), WEBTALK_FRAME_TIMEOUT: String(FRAME_TIMEOUT) };

function start(extra: Record<string, string> = {}): Promise<Spawned> {
  return spawnTarget([], { WEBTALK_SECRET: SECRET, WEBTALK_MAX_CONTROL_CONNECTIONS: "200", ...timeouts, ...extra });
}

/** A raw connection that records every frame it is sent and when it closes. */
async function raw(port: number) {
  const socket = connect({ host: "127.0.0.1", port });
  sockets.push(socket);
  socket.on("error", () => undefined);
  const decoder = new FrameDecoder();
  const frames: string[] = [];
  socket.on("data", (chunk: Buffer) => {
    for (const frame of decoder.push(chunk)) frames.push(frame.kind === "payload" ? new TextDecoder().decode(frame.bytes) : `<${frame.kind}>`);
  });
  const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(performance.now())));
  await within(new Promise((resolve) => socket.once("connect", resolve)), "a raw control connection");
  return { socket, frames, closed };
}

/** Connects, authenticates and pings, retrying while refused; resolves with the ms it took. */
async function admitted(port: number, deadlineMs: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < deadlineMs) {
    const ctl = await ControlClient.connect(port).catch(() => undefined);
    if (ctl === undefined) continue;
    const auth = await ctl.call(`[auth] ${SECRET}`).catch(() => "<none>");
    const ping = auth.startsWith("[ok]") ? await ctl.call("[ping]").catch(() => "<none>") : "";
    ctl.close();
    if (ping.startsWith("[ok]")) return performance.now() - started;
    await Bun.sleep(50);
  }
  return Infinity;
}

test("200 connections that never authenticate, and more arriving, do not lock out a backend", async () => {
  target = await start();
  for (let i = 0; i < 200; i++) await raw(target.privatePort);
  let squatting = true;
  const more = (async () => {
    while (squatting) {
      await raw(target!.privatePort).catch(() => undefined);
      await Bun.sleep(20);
    }
  })();
  const ms = await admitted(target.privatePort, 10_000);
  squatting = false;
  await more;
  report("squatters", { squatters: 200, admittedMs: Number.isFinite(ms) ? ms : "never" });
  expect(ms).toBeLessThanOrEqual(8_000);
}, 60_000);

test("squatters that reconnect as fast as they are closed do not push out a backend that authenticates at once", async () => {
  target = await start();
  const port = target.privatePort;
  // Thousands of strangers on 127.0.0.1 that come back the moment they are closed (a partial [auth] each).
  const live = new Set<Socket>();
  let flooding = true;
  const squat = (): void => {
    if (!flooding) return;
    const socket = connect({ host: "127.0.0.1", port });
    live.add(socket);
    socket.on("error", () => undefined);
    socket.on("connect", () => socket.write("00020[auth] to"));
    socket.on("close", () => {
      live.delete(socket);
      setTimeout(squat, 1);
    });
  };
  for (let i = 0; i < scale(1_500, 3_000); i++) {
    squat();
    if (i % 200 === 0) await Bun.sleep(5);
  }
  await Bun.sleep(500);
  // The backend, from another address, connects once per try (no retry) and sends [auth] at once.
  const results: string[] = [];
  for (let i = 0; i < scale(10, 30); i++) {
    results.push(await authOnceFrom("127.0.0.2", port));
    await Bun.sleep(100);
  }
  flooding = false;
  for (const socket of live) socket.destroy();
  const admitted = results.filter((reply) => reply === "[ok] authenticated").length;
  report("reconnecting squatters", { tries: results.length, admitted, refused: [...new Set(results.filter((r) => r !== "[ok] authenticated"))].join(" | ") || "none" });
  expect(admitted).toBe(results.length);
}, 60_000);

/** One connection from `localAddress`: [auth] at once, and its reply (or why there was none). */
async function authOnceFrom(localAddress: string, port: number): Promise<string> {
  const socket = connect({ host: "127.0.0.1", port, localAddress });
  sockets.push(socket);
  const decoder = new FrameDecoder();
  const reply = new Promise<string>((resolve) => {
    socket.on("error", (error) => resolve(`<error ${error.message}>`));
    socket.on("close", () => resolve("<closed>"));
    socket.on("data", (chunk: Buffer) => {
      const [frame] = decoder.push(chunk);
      if (frame) resolve(frame.kind === "payload" ? new TextDecoder().decode(frame.bytes) : `<${frame.kind}>`);
    });
  });
  socket.on("connect", () => socket.write(encodeFrame(`[auth] ${SECRET}`)));
  try {
    return await within(reply, "the backend's [auth] reply", 8_000).catch(() => "<no reply in 8 s>");
  } finally {
    socket.destroy();
  }
}

test("a connection that does not authenticate in time is told why and closed", async () => {
  target = await start();
  const idle = await raw(target.privatePort);
  const opened = performance.now();
  const closedAt = await within(idle.closed, "the idle connection to be closed", (AUTH_TIMEOUT + 3) * 1000);
  report("auth timeout", { authTimeoutS: AUTH_TIMEOUT, closedAfterMs: closedAt - opened });
  expect(idle.frames.join(" ")).toContain("[error]");
  expect(closedAt - opened).toBeGreaterThanOrEqual(AUTH_TIMEOUT * 1000 - 100);
}, 60_000);

test("a frame that never completes is closed within --frame-timeout, with an [error] saying why", async () => {
  target = await start();
  const slow = await raw(target.privatePort);
  slow.socket.write(encodeFrame(`[auth] ${SECRET}`));
  slow.socket.write("99999");
  const started = performance.now();
  const drip = setInterval(() => slow.socket.write("x"), 1_000);
  try {
    const bound = FULL ? 40_000 : (FRAME_TIMEOUT + 3) * 1000;
    const closedAt = await within(slow.closed, "the slow frame's connection to be closed", bound);
    report("slow frame", { frameTimeoutS: FRAME_TIMEOUT, closedAfterMs: closedAt - started });
    expect(slow.frames[0]).toStartWith("[ok]");
    expect(slow.frames.slice(1).join(" ")).toContain("[error]");
  } finally {
    clearInterval(drip);
  }
}, 60_000);

test("a failed [auth] is logged without the secret, answers nothing more, and closes only after a delay", async () => {
  target = await start();
  const guesser = await raw(target.privatePort);
  const sent = performance.now();
  guesser.socket.write(encodeFrame("[auth] guess-number-one"));
  guesser.socket.write(encodeFrame("[auth] guess-number-two"));
  guesser.socket.write(encodeFrame("[ping]"));
  let answeredAt = 0;
  guesser.socket.once("data", () => (answeredAt = performance.now()));
  const closedAt = await within(guesser.closed, "the guesser to be closed", 5_000);
  await Bun.sleep(100);
  // The verdict itself comes late: a guesser learns at most one answer per connection per second.
  expect(answeredAt - sent).toBeGreaterThanOrEqual(900);
  report("failed auth", { closedAfterMs: closedAt - sent, replies: guesser.frames.length });
  expect(guesser.frames).toHaveLength(1);
  expect(guesser.frames[0]).toStartWith("[error]");
  expect(closedAt - sent).toBeGreaterThanOrEqual(800);
  const log = target.output();
  expect(log).toMatch(/auth.*127\.0\.0\.1|127\.0\.0\.1.*auth/i);
  expect(log).not.toContain("guess-number");
}, 60_000);
