// An SSE event id carries every source's position, but never more than MAX_ID_BYTES: a user in so many
// channels that the list would pass it leaves the least recent out and says so (`+`). A resume from such
// an id announces a `gap` for every channel it does not name, never silence, and replays the ones it does.

import { expect, test } from "bun:test";
import { encodeFrames } from "../src/protocol/frame.ts";
import type { Webtalk } from "../src/server.ts";
import { MAX_ID_BYTES } from "../src/transport/sse-session.ts";
import { ControlClient, newUser, useServer } from "./helpers.ts";
import { eventsUrl, SseClient } from "./sse-client.ts";

let server: Webtalk;
let ctl: ControlClient;
useServer((s, c) => ((server = s), (ctl = c)));

/** Sends frames pipelined and expects every reply to start with "[ok]". */
async function pipelined(frames: string[]): Promise<string[]> {
  ctl.write(encodeFrames(frames));
  const replies = await ctl.replies.take(frames.length, "replies", 30_000);
  expect(replies.filter((r) => !r.startsWith("[ok]"))).toEqual([]);
  return replies.map((r) => r.slice(5));
}

test("1,000 channels with 16-digit IDs: ids stay under the cap, and a resume tells a gap for each channel left out", async () => {
  const user = await newUser(ctl);
  const channels = await pipelined(Array.from({ length: 1_000 }, () => "[newchannel]"));
  expect(channels.every((c) => /^\d{16}$/.test(c))).toBe(true);
  await pipelined(channels.map((c) => `[join] ${c}!${user.id}`));
  const stream = await SseClient.open(eventsUrl(server.publicUrl, user.token));
  expect((await stream.events.next("epoch")).type).toBe("epoch");
  await pipelined(channels.map((c, i) => `[shout] ${c}!m${i}`));
  let longest = 0;
  for (let i = 0; i < channels.length; i++) {
    const event = await stream.next(`shout ${i}`);
    expect(event.data).toBe(`m${i}`);
    longest = Math.max(longest, event.id.length);
  }
  const id = stream.lastEventId;
  // Without the cap the list would be about 1,000 × 19 bytes.
  expect(longest).toBeLessThanOrEqual(MAX_ID_BYTES);
  expect(id).toMatch(/^[A-Za-z0-9_-]+!\+,/);
  const oldest = channels[0]!;
  const newest = channels[channels.length - 1]!;
  expect(id).not.toContain(`,${oldest}:`);
  expect(id.endsWith(`,${newest}:1`)).toBe(true);
  stream.cut();

  // While away: one shout to a channel the id left out, one to a channel it names.
  await pipelined([`[shout] ${oldest}!while away, left out`, `[shout] ${newest}!while away, listed`]);
  const again = await SseClient.open(eventsUrl(server.publicUrl, user.token), { "Last-Event-ID": id });
  expect((await again.events.next("epoch")).type).toBe("epoch");
  const seen: { type: string; data: string }[] = [];
  for (;;) {
    const event = await again.next("the resume's events").catch((e) => { console.log("SEEN", seen.length, JSON.stringify(seen.slice(0, 3)), JSON.stringify(seen.slice(-3))); throw e; });
    seen.push({ type: event.type, data: event.data });
    if (event.data === "while away, listed") break;
  }
  const gaps = new Set(seen.filter((e) => e.type === "gap").map((e) => e.data));
  // Every channel the id left out is told, the one that spoke while away included; none is silent.
  const listed = new Set(id.slice(id.indexOf("!") + 1).split(",").map((item) => item.split(":")[0]));
  const leftOut = channels.filter((c) => !listed.has(c));
  expect(leftOut.length).toBeGreaterThan(100);
  const silent = leftOut.filter((c) => !gaps.has(c));
  expect(silent).toEqual([]);
  expect([...gaps].filter((c) => listed.has(c))).toEqual([]);
  expect(seen.filter((e) => e.type === "message").map((e) => e.data)).toEqual(["while away, listed"]);
  // The resumed stream's id still says it leaves sources out.
  expect(again.lastEventId).toMatch(/^[A-Za-z0-9_-]+!\+,/);
  again.cut();
}, 60_000);
