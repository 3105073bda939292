// --sse-ping through a proxy that buffers responses (nginx's proxy_buffering, with its
// proxy_read_timeout): the comments keep a quiet stream from being timed out, and X-Accel-Buffering:
// no keeps the proxy from holding the events back. Without pings faster than the timeout, the proxy
// cuts the stream (the test can fail). A proxy that buffers and ignores the header holds everything,
// response head included, until 4 KB have gathered: no server-side ping helps there; the proxy must be
// told (docs/operations/nginx-tls.md).

import { afterAll, expect, test } from "bun:test";
import type { Webtalk } from "../src/server.ts";
import { BufferingProxy } from "./buffering-proxy.ts";
import { ControlClient, newUser, startTestServer } from "./helpers.ts";
import { eventsUrl, SseClient } from "./sse-client.ts";

const READ_TIMEOUT_MS = 1_500;
const started: { server: Webtalk; ctl: ControlClient; proxy: BufferingProxy }[] = [];

afterAll(async () => {
  for (const { server, ctl, proxy } of started) {
    proxy.stop();
    ctl.close();
    await server.stop();
  }
});

async function behindProxy(ssePing: number, honourAccel: boolean) {
  const server = await startTestServer({ ssePing });
  const ctl = await ControlClient.connect(server.private.port);
  const proxy = new BufferingProxy(server.public.port, { bufferBytes: 4096, readTimeoutMs: READ_TIMEOUT_MS, honourAccel });
  started.push({ server, ctl, proxy });
  const user = await newUser(ctl);
  const stream = await SseClient.open(eventsUrl(`ws://127.0.0.1:${proxy.port}/webtalk`, user.token));
  expect(stream.response.status).toBe(200);
  return { ctl, proxy, user, stream };
}

test("a quiet stream with --sse-ping 0.5 outlives the proxy's 1.5 s read timeout, and a whisper then arrives at once", async () => {
  const { ctl, proxy, user, stream } = await behindProxy(0.5, true);
  expect((await stream.events.next("the epoch")).type).toBe("epoch");
  // Three read timeouts' worth of silence but for the comments.
  await stream.comments.take(8, "the keep-alive comments", 10_000);
  expect(proxy.timedOut).toBe(0);
  await ctl.ok(`[whisper] ${user.id}!through`);
  expect((await stream.next("the whisper")).data).toBe("through");
  stream.cut();
});

test("without pings faster than the timeout, the proxy cuts the stream (the check above can fail)", async () => {
  const { proxy, stream } = await behindProxy(10, true);
  await stream.events.next("the epoch");
  await stream.ended;
  expect(proxy.timedOut).toBe(1);
});
