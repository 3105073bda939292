// An SSE browser that never reads its stream: the server must close it as a slow consumer (the
// --backpressure bound applies to SSE as to WebSocket) and its RSS must stay bounded while the others
// get everything. Memory is measured from outside, in /proc.

import { expect, test } from "bun:test";
import { encodeFrames } from "../../src/protocol/frame.ts";
import { ControlClient, Inbox, newUser } from "../helpers.ts";
import { eventsUrl, SseClient } from "../sse-client.ts";
import { MB, rssOf, RssSampler, scale, spawnTarget } from "./kit.ts";

test("an SSE stream that is never read is closed with 4006 while 150 MB are shouted to it; RSS stays bounded, others unaffected", async () => {
  const server = await spawnTarget(["--backpressure", "262144"]);
  try {
    const ctl = await ControlClient.connect(server.privatePort);
    const events = await ControlClient.connect(server.privatePort);
    await events.ok("[listen]");
    expect(await events.replies.next("[epoch]")).toStartWith("[epoch] ");
    const channel = await ctl.ok("[newchannel]");
    const [slowUser, readerUser] = [await newUser(ctl), await newUser(ctl)];
    await ctl.ok(`[join] ${channel}!${slowUser.id}`);

    // A raw HTTP client that reads the response head and then stops taking bytes off its socket.
    const url = new URL(eventsUrl(server.publicUrl, slowUser.token));
    const head = new Inbox<string>();
    const slow = await Bun.connect({
      hostname: "127.0.0.1",
      port: Number(url.port),
      socket: {
        data: (socket, chunk) => {
          head.push(new TextDecoder().decode(chunk));
          socket.pause();
        },
      },
    });
    slow.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\n\r\n`);
    expect(await head.next("the response head")).toStartWith("HTTP/1.1 200");
    expect(await events.replies.next()).toBe(`[online] ${slowUser.id}`);
    const reader = await SseClient.open(eventsUrl(server.publicUrl, readerUser.token));
    expect(await events.replies.next()).toBe(`[online] ${readerUser.id}`);
    await reader.events.next("the reader's epoch");

    const rss = new RssSampler(server.proc.pid);
    const chunk = "z".repeat(1000);
    const batch = 1000;
    const batches = scale(150, 400);
    // The channel is the slow browser's alone: everything shouted is for the stream that does not read.
    for (let b = 0; b < batches; b++) {
      ctl.write(encodeFrames(Array.from({ length: batch }, (_, i) => `[shout] ${channel}!${b * batch + i}:${chunk}`)));
      await ctl.replies.take(batch, "shout replies", 20_000);
    }
    rss.stop();
    expect(await events.replies.next("[offline]")).toBe(`[offline] ${slowUser.id}`);
    // A browser that reads was not held up.
    await ctl.ok(`[whisper] ${readerUser.id}!still here`);
    expect((await reader.next("the reader's whisper")).data).toBe("still here");
    expect(await ctl.call("[stats]")).toContain("slow_consumers=1");
    const shouted = batches * batch * chunk.length;
    console.log(
      `sse slow consumer: ${(shouted / MB).toFixed(0)} MB shouted, server RSS ${(rss.baseline / MB).toFixed(1)} → peak ${(rss.peak / MB).toFixed(1)} MB (+${(rss.growth / MB).toFixed(1)} MB)`,
    );
    // It may hold ~4× 256 KB for the slow stream; the rest of the growth is the control traffic's garbage
    // not yet collected (≈ 43 MB with nobody subscribed at all). A stream holding what was shouted would
    // grow by all of it.
    expect(rss.growth).toBeLessThan(shouted / 2);
    expect(rssOf(server.proc.pid)).toBeGreaterThan(0);
    reader.cut();
    slow.terminate();
    ctl.close();
    events.close();
  } finally {
    await server.stop();
  }
}, 120_000);
