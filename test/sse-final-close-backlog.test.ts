// A final close (kick) reaching an SSE stream with a backlog: the close event waits behind the unread
// bytes, so a browser that reads late still hears it and stops; one that never reads is cut after a
// minute (FINAL_READ_MS in sse-session.ts), so a closed stream cannot hold its backlog for ever.
// Raw HTTP over TCP, paused to stand for a browser that does not read.

import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Socket } from "bun";
import { encodeFrames } from "../src/protocol/frame.ts";
import type { Webtalk } from "../src/server.ts";
import { ControlClient, newUser, startTestServer, within, type User } from "./helpers.ts";

/** More than loopback's socket buffers take, so the server queues some (≈ 16 MB). */
const BURST = 4_000;
const TEXT = "x".repeat(4_000);
/** sse-session.ts FINAL_READ_MS, and some slack for a loaded machine. */
const FINAL_READ_MS = 60_000;

let server: Webtalk;
let ctl: ControlClient;

beforeAll(async () => {
  // High enough that the paused stream is not closed as a slow consumer first.
  server = await startTestServer({ backpressure: 256 << 20 });
  ctl = await ControlClient.connect(server.private.port);
});

afterAll(async () => {
  ctl.close();
  await server.stop();
});

/** An SSE request on a raw socket that stops reading at once; `text()` is what it read, `closed` when the server ended it. */
async function pausedStream(user: User, at: Webtalk) {
  let text = "";
  let bytes = 0;
  const { promise: closed, resolve } = Promise.withResolvers<void>();
  const socket: Socket<undefined> = await Bun.connect({
    hostname: "127.0.0.1",
    port: at.public.port,
    socket: {
      data: (_s, chunk) => {
        bytes += chunk.length;
        text = (text + new TextDecoder().decode(chunk)).slice(-4096);
      },
      close: () => resolve(),
      error: () => resolve(),
    },
  });
  socket.write(`GET /webtalk/events?login=${encodeURIComponent(user.token)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  return { socket, closed, tail: () => text, bytes: () => bytes };
}

async function backlogged(at = server, ctl_ = ctl): Promise<[User, Awaited<ReturnType<typeof pausedStream>>]> {
  const ctl = ctl_;
  const user = await newUser(ctl);
  const channel = await ctl.ok("[newchannel]");
  await ctl.ok(`[join] ${channel}!${user.id}`);
  const stream = await pausedStream(user, at);
  await within(
    (async () => {
      while ((await ctl.ok(`[online] ${user.id}`)) !== "1") await Bun.sleep(10);
    })(),
    "the stream's login",
  );
  stream.socket.pause();
  ctl.write(encodeFrames(Array.from({ length: BURST }, (_, i) => `[shout] ${channel}!${i} ${TEXT}`)));
  await ctl.replies.take(BURST, "the shouts' replies", 60_000);
  await ctl.ok(`[kick] ${user.id}`);
  return [user, stream];
}

test("kicked with ≈ 16 MB unread: read late, the stream still ends with the close event 4005", async () => {
  const [user, stream] = await backlogged();
  stream.socket.resume();
  // The chunked response ends properly (not cut); the connection itself stays open (keep-alive).
  await within(
    (async () => {
      while (!stream.tail().endsWith("\r\n0\r\n\r\n")) await Bun.sleep(20);
    })(),
    "the end of the response",
    30_000,
  );
  expect(stream.bytes()).toBeGreaterThan(BURST * TEXT.length);
  expect(stream.tail()).toContain("event: close\ndata: 4005 kicked\n\n");
  stream.socket.end();
  expect(await ctl.ok(`[online] ${user.id}`)).toBe("0");
}, 90_000);

test("kicked with a backlog and never read: cut after a minute, so the backlog is not held for ever", async () => {
  const [, stream] = await backlogged();
  await Bun.sleep(FINAL_READ_MS + 5_000);
  // Resumed now, it gets what the kernel buffers held and then the end of a cut connection: no close event.
  stream.socket.resume();
  await within(stream.closed, "the end of the connection", 30_000);
  expect(stream.tail()).not.toContain("event: close");
  expect(stream.bytes()).toBeLessThan(BURST * TEXT.length);
}, 120_000);

test("a server stopping with such a stream still stops by --shutdown-timeout", async () => {
  const own = await startTestServer({ backpressure: 256 << 20, shutdownTimeout: 2 });
  const ownCtl = await ControlClient.connect(own.private.port);
  const [, stream] = await backlogged(own, ownCtl);
  ownCtl.close();
  // Bounded by the 2 s deadline, not by the reader's minute (FINAL_READ_MS): well inside 15 s.
  await within(own.stop(), "the server to stop", 15_000);
  stream.socket.terminate();
  expect(stream.tail()).not.toContain("event: close");
}, 90_000);
