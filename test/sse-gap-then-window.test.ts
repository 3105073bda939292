// A stream away while more than the replay window was sent: a `gap` event naming the source, then
// exactly what the window still holds, in order, then live (docs/reference/sse-protocol.md: "everything
// after each position still in the replay window is sent first ... what the window no longer holds is
// a gap event"). Plain EventSource semantics: the reconnect carries the last id as Last-Event-ID.

import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Webtalk } from "../src/server.ts";
import { ControlClient, newUser, startTestServer, type User } from "./helpers.ts";
import { eventsUrl, SseClient, type SseEvent } from "./sse-client.ts";

const WINDOW = 3;
let server: Webtalk;
let ctl: ControlClient;

beforeAll(async () => {
  server = await startTestServer({ replayCount: WINDOW });
  ctl = await ControlClient.connect(server.private.port);
});

afterAll(async () => {
  ctl.close();
  await server.stop();
});

async function open(user: User, lastEventId?: string): Promise<SseClient> {
  const client = await SseClient.open(eventsUrl(server.publicUrl, user.token), lastEventId ? { "Last-Event-ID": lastEventId } : {});
  expect(client.response.status).toBe(200);
  expect((await client.events.next("the epoch")).type).toBe("epoch");
  return client;
}

/** The event's own SOURCE:OFFSET (the last item of its id). */
function own(event: SseEvent): string {
  return /(u|\d+):(\d+)$/.exec(event.id)?.[0] ?? "";
}

test("a channel: gap, then the window's last messages in order, then live", async () => {
  const user = await newUser(ctl);
  const channel = await ctl.ok("[newchannel]");
  await ctl.ok(`[join] ${channel}!${user.id}`);
  const first = await open(user);
  await ctl.ok(`[shout] ${channel}!before`);
  expect((await first.next()).data).toBe("before");
  first.cut();
  // Offsets 2..11 while away; the window keeps 9, 10, 11.
  for (let i = 2; i <= 11; i++) await ctl.ok(`[shout] ${channel}!away ${i}`);
  const again = await open(user, first.lastEventId);
  await ctl.ok(`[shout] ${channel}!live 12`);
  const got: string[] = [];
  for (let event = await again.next("the gap"); ; event = await again.next("more")) {
    got.push(event.type === "gap" ? `gap ${event.data}` : `${own(event)} ${event.data}`);
    if (event.data === "live 12") break;
  }
  expect(got).toEqual([`gap ${channel}`, `${channel}:9 away 9`, `${channel}:10 away 10`, `${channel}:11 away 11`, `${channel}:12 live 12`]);
  again.cut();
});

test("whispers: gap u, then the window's last whispers in order, then live", async () => {
  const user = await newUser(ctl);
  const first = await open(user);
  await ctl.ok(`[whisper] ${user.id}!before`);
  expect((await first.next()).data).toBe("before");
  first.cut();
  for (let i = 2; i <= 11; i++) await ctl.ok(`[whisper] ${user.id}!away ${i}`);
  const again = await open(user, first.lastEventId);
  await ctl.ok(`[whisper] ${user.id}!live 12`);
  const got: string[] = [];
  for (let event = await again.next("the gap"); ; event = await again.next("more")) {
    got.push(event.type === "gap" ? `gap ${event.data}` : `${own(event)} ${event.data}`);
    if (event.data === "live 12") break;
  }
  // Held whispers may come first (each once); what matters: the gap, and 9, 10, 11 once and in order before live.
  const numbered = got.filter((g) => g.startsWith("u:"));
  expect(got).toContain("gap u");
  expect(numbered.slice(-4)).toEqual(["u:9 away 9", "u:10 away 10", "u:11 away 11", "u:12 live 12"]);
  expect(new Set(got).size).toBe(got.length);
  again.cut();
});
