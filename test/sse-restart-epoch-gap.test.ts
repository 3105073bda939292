// An in-memory server restarted: a stream resuming with the old epoch's Last-Event-ID must be told
// that what it had can no longer be recovered: a `gap` event for every source its id names (sse-protocol.md:
// "gap ... the replay window no longer reaches back, or the server restarted"), as a WebSocket v2 page
// gets `#gap` for each. The original server is stopped and a new one started on the same port.

import { expect, test } from "bun:test";
import { ControlClient, newUser, startTestServer } from "./helpers.ts";
import { eventsUrl, SseClient } from "./sse-client.ts";

test("resumed on a restarted in-memory server with the old epoch: a gap for u and for the channel, then live", async () => {
  let server = await startTestServer();
  let ctl = await ControlClient.connect(server.private.port);
  const port = server.public.port;
  const user = await newUser(ctl);
  const channel = await ctl.ok("[newchannel]");
  await ctl.ok(`[join] ${channel}!${user.id}`);
  const first = await SseClient.open(eventsUrl(server.publicUrl, user.token));
  await first.events.next("the epoch");
  await ctl.ok(`[whisper] ${user.id}!w1`);
  await ctl.ok(`[shout] ${channel}!s1`);
  await first.next();
  const seen = await first.next();
  expect(seen.id).toContain(`u:1,${channel}:1`);
  ctl.close();
  await server.stop();

  // The same user and channel exist again (a backend that recreates its state cannot keep the IDs,
  // so the stream is resumed as the new user with the old id, which is what a browser would send).
  server = await startTestServer({ public: { host: "127.0.0.1", port } });
  try {
    ctl = await ControlClient.connect(server.private.port);
    const again = await newUser(ctl);
    const channel2 = await ctl.ok("[newchannel]");
    await ctl.ok(`[join] ${channel2}!${again.id}`);
    const oldId = seen.id.replace(`${channel}:`, `${channel2}:`);
    const resumed = await SseClient.open(eventsUrl(server.publicUrl, again.token), { "Last-Event-ID": oldId });
    expect(resumed.response.status).toBe(200);
    await resumed.events.next("the epoch");
    await ctl.ok(`[whisper] ${again.id}!live`);
    const events = [];
    for (let e = await resumed.next("events"); e.data !== "live"; e = await resumed.next("events")) events.push(`${e.type} ${e.data}`);
    // The old id named channel 1 too (the login's `at` event put it there): it gets its gap as well.
    expect(events.toSorted()).toEqual(["gap 1", `gap ${channel2}`, "gap u"]);
    resumed.cut();
  } finally {
    ctl.close();
    await server.stop();
  }
});
