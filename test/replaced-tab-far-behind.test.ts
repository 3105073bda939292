// A tab far behind on reading (more than 64 KiB unread) that a newer login replaces is cut (1006), not
// closed with 4002: Bun would hold its backlog until it read. Its page then sees a network loss and
// logs in again. Before, that login replaced the newer tab in turn (the user's new tab was thrown out
// by the stalled old one). A tab that names itself at upgrade (`?tab=`, as /webtalk.js does) is now
// answered with the 4002 it missed; other tabs log in as before. Real sockets: the stalled tab is a
// raw WebSocket that stops reading after the handshake.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, newUser, rawWebSocket, startTestServer } from "./helpers.ts";

let server: Webtalk;
let ctl: ControlClient;

beforeAll(async () => {
  // Room for a backlog well past the kernel's socket buffers before the slow-consumer close (4006).
  server = await startTestServer({ backpressure: 64 * 1024 * 1024 });
  ctl = await ControlClient.connect(server.private.port);
});

afterAll(async () => {
  ctl.close();
  await server.stop();
});

async function onlineIs(user: number, want: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while ((await ctl.ok(`[online] ${user}`)) !== want) {
    if (Date.now() > deadline) throw new Error(`[online] ${user} never became ${want}`);
    await Bun.sleep(10);
  }
}

/** A tab that logs in and then stops reading, with `bytes` whispered to it: far behind. */
async function stalledTab(token: string, user: number, tab: string, bytes: number) {
  const raw = await rawWebSocket(server.public.port, `/webtalk?tab=${tab}`, { read: false });
  expect(raw.status).toStartWith("HTTP/1.1 101");
  raw.sendText(token);
  await onlineIs(user, "1");
  const text = "x".repeat(60_000);
  const count = Math.ceil(bytes / text.length);
  ctl.write(encodeFrames(Array.from({ length: count }, () => `[whisper] ${user}!${text}`)));
  await ctl.replies.take(count, "whisper replies", 30_000);
  return { raw };
}

test("the stalled tab's login after the cut is told 4002; the newer tab stays; a third tab still replaces it", async () => {
  const user = await newUser(ctl);
  const stalled = await stalledTab(user.token, user.id, "tabA", 16 * 1024 * 1024);
  const newer = await Browser.open(`${server.publicUrl}?tab=tabB`);
  newer.send(user.token);
  // The newer tab is admitted (the stalled one is cut in that same step) once a whisper reaches it.
  await ctl.ok(`[whisper] ${user.id}!to the newer tab`);
  expect(await newer.messages.next("the whisper")).toBe("to the newer tab");

  // The stalled page "reconnects" under its own name: it is told what it missed, and the newer tab stays.
  const back = await Browser.open(`${server.publicUrl}?tab=tabA`);
  back.send(user.token);
  expect(await back.closedWithin("the owed 4002")).toEqual({ code: 4002, reason: "replaced by another login" });
  await ctl.ok(`[whisper] ${user.id}!still here`);
  expect(await newer.messages.next("the newer tab's whisper")).toBe("still here");

  // Another tab (or a page without a name) replaces the newer one as always.
  const third = await Browser.open(`${server.publicUrl}?tab=tabC`);
  third.send(user.token);
  expect(await newer.closedWithin("the newer tab replaced")).toEqual({ code: 4002, reason: "replaced by another login" });
  await ctl.ok(`[whisper] ${user.id}!third`);
  expect(await third.messages.next("the third tab's whisper")).toBe("third");
  third.close();
  stalled.raw.socket.end();
}, 60_000);

test("a tab name is only remembered for the user it was cut as: another user's login from it is not refused", async () => {
  const user = await newUser(ctl);
  const other = await newUser(ctl);
  const stalled = await stalledTab(user.token, user.id, "shared", 16 * 1024 * 1024);
  const newer = await Browser.open(server.publicUrl);
  newer.send(user.token);
  await ctl.ok(`[whisper] ${user.id}!to the newer tab`);
  expect(await newer.messages.next("the whisper")).toBe("to the newer tab");
  const otherTab = await Browser.open(`${server.publicUrl}?tab=shared`);
  otherTab.send(other.token);
  await onlineIs(other.id, "1");
  await ctl.ok(`[whisper] ${other.id}!hello`);
  expect(await otherTab.messages.next("the other user's whisper")).toBe("hello");
  otherTab.close();
  newer.close();
  stalled.raw.socket.end();
}, 60_000);
