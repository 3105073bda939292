// A stream resumed with Last-Event-ID and cut again before any new message must still carry the position:
// its first event (the epoch) sets the browser's Last-Event-ID, and the next automatic reconnect sends it.

import { expect, test } from "bun:test";
import type { Webtalk } from "../src/server.ts";
import { ControlClient, newUser, useServer } from "./helpers.ts";
import { eventsUrl, SseClient } from "./sse-client.ts";

let server: Webtalk;
let ctl: ControlClient;
useServer((s, c) => ((server = s), (ctl = c)));

test("two reconnects in a row with nothing in between: a shout sent during the second outage arrives", async () => {
  const user = await newUser(ctl);
  const channel = await ctl.ok("[newchannel]");
  await ctl.ok(`[join] ${channel}!${user.id}`);
  const first = await SseClient.open(eventsUrl(server.publicUrl, user.token));
  expect((await first.events.next("epoch")).type).toBe("epoch");
  await ctl.ok(`[shout] ${channel}!A`);
  expect((await first.next()).data).toBe("A");
  first.cut();
  // First automatic reconnect: nothing was missed, so only the epoch event comes.
  const second = await SseClient.open(eventsUrl(server.publicUrl, user.token), { "Last-Event-ID": first.lastEventId });
  const epoch = await second.events.next("epoch");
  expect(epoch.type).toBe("epoch");
  // EventSource takes this id as its Last-Event-ID: it must still hold the channel's position.
  expect(second.lastEventId).toContain(`${channel}:1`);
  second.cut();
  await ctl.ok(`[shout] ${channel}!B`);
  const third = await SseClient.open(eventsUrl(server.publicUrl, user.token), { "Last-Event-ID": second.lastEventId });
  expect((await third.events.next("epoch")).type).toBe("epoch");
  expect((await third.next("B, shouted while away")).data).toBe("B");
  third.cut();
});
