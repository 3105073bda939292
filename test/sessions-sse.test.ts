// --sessions with both transports: a Server-Sent Events stream is a session like a WebSocket tab, so
// it counts toward the limit, receives every whisper and shout, and is the one closed (with a close
// event naming the session limit) when it is the oldest past the limit.

import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, newUser, startTestServer, within } from "./helpers.ts";
import { eventsUrl, SseClient } from "./sse-client.ts";

let server: Webtalk;
let ctl: ControlClient;
beforeAll(async () => {
  server = await startTestServer({ sessions: 2 });
  ctl = await ControlClient.connect(server.private.port);
});
afterAll(async () => {
  ctl.close();
  await server.stop();
});

/** A WebSocket tab of the user, once a whisper sent after its login has reached it. */
async function tab(token: string, id: string): Promise<Browser> {
  const browser = await Browser.open(server.publicUrl);
  browser.send(token);
  for (let i = 0; ; i++) {
    const marker = `tab-ready-${i}`;
    await ctl.ok(`[whisper] ${id}!${marker}`);
    const got = await Promise.race([browser.messages.next("the tab's marker"), Bun.sleep(200).then(() => "")]);
    if (got === marker) return browser;
    if (i > 50) throw new Error("the tab never logged in");
  }
}

test("an SSE stream and a WebSocket tab of one user both receive; a third tab replaces the oldest, the stream", async () => {
  const user = await newUser(ctl);
  const stream = await SseClient.open(eventsUrl(server.publicUrl, user.token));
  expect((await stream.events.next("the epoch event")).type).toBe("epoch");
  const second = await tab(user.token, String(user.id));
  expect(await ctl.ok(`[online] ${user.id}`)).toBe("1");

  await ctl.ok(`[whisper] ${user.id}!to both`);
  await ctl.ok(`[shout] 1!to channel 1`);
  expect(await second.messages.next("the whisper")).toBe("to both");
  expect(await second.messages.next("the shout")).toBe("to channel 1");
  // The stream also got the tab's login markers: skip them.
  const seen: string[] = [];
  while (seen.length < 2) {
    const event = await stream.next("the stream's whisper and shout");
    if (!event.data.startsWith("tab-ready")) seen.push(event.data);
  }
  expect(seen).toEqual(["to both", "to channel 1"]);

  // A third tab: past --sessions 2 the oldest goes, and the oldest is the SSE stream.
  const third = await tab(user.token, String(user.id));
  let close;
  for (let e = await stream.next("the close event"); ; e = await stream.next("the close event")) {
    if (e.type === "close") {
      close = e;
      break;
    }
  }
  expect(close.data).toStartWith("4002 session limit");
  await within(stream.ended, "the stream to end");
  await ctl.ok(`[whisper] ${user.id}!after`);
  for (const browser of [second, third]) {
    let m = await browser.messages.next("the last whisper");
    while (m.startsWith("tab-ready")) m = await browser.messages.next("the last whisper");
    expect(m).toBe("after");
  }
  expect(await ctl.ok(`[online] ${user.id}`)).toBe("1");
  second.close();
  third.close();
});
