// Server-Sent Events end to end over real HTTP: GET {path}/events?login=ID!SALT, events, resume with
// Last-Event-ID, gaps, refusals, keep-alive comments and final close events.

import { describe, expect, test } from "bun:test";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, newUser, startTestServer, useServer, within, type User } from "./helpers.ts";
import { eventsUrl, SseClient } from "./sse-client.ts";

let server: Webtalk;
let ctl: ControlClient;
useServer((s, c) => ((server = s), (ctl = c)));

/** Logs `user` in over SSE and waits for the first event (the epoch), so the login has been carried out. */
async function sseLogin(user: User, headers: Record<string, string> = {}, on: Webtalk = server): Promise<SseClient> {
  const client = await SseClient.open(eventsUrl(on.publicUrl, user.token), headers);
  expect(client.response.status).toBe(200);
  const epoch = await client.events.next("the epoch event");
  expect(epoch.type).toBe("epoch");
  return client;
}

/** The next event about `user`: events are server-wide (cluster-wide with Redis), and an earlier test's user may still be going offline. */
async function eventAbout(events: ControlClient, user: User, what = "an event"): Promise<string> {
  for (;;) {
    const event = await events.replies.next(what);
    if (event.endsWith(` ${user.id}`)) return event;
  }
}

async function listener(port = server.private.port): Promise<ControlClient> {
  const events = await ControlClient.connect(port);
  await events.ok("[listen]");
  expect(await events.replies.next("[epoch]")).toStartWith("[epoch] ");
  return events;
}

describe("login", () => {
  test("200 text/event-stream, a jittered retry:, the epoch as the first id, and the user is online", async () => {
    const user = await newUser(ctl);
    const client = await SseClient.open(eventsUrl(server.publicUrl, user.token));
    expect(client.response.status).toBe(200);
    expect(client.response.headers.get("content-type")).toStartWith("text/event-stream");
    expect(client.response.headers.get("cache-control")).toContain("no-cache");
    const epoch = await client.events.next("the epoch event");
    expect(epoch).toEqual({ type: "epoch", data: epoch.data, id: `${epoch.data}!` });
    expect(client.retries).toHaveLength(1);
    expect(client.retries[0]).toBeGreaterThanOrEqual(1000);
    expect(client.retries[0]).toBeLessThanOrEqual(3000);
    expect(await ctl.ok(`[online] ${user.id}`)).toBe("1");
    client.cut();
  });

  test("a wrong salt, an unknown user or no login is 401 with a short reason and no stream", async () => {
    const user = await newUser(ctl);
    for (const token of [`${user.id}!wrong`, "1!nobody", ""]) {
      const response = await fetch(eventsUrl(server.publicUrl, token));
      expect(response.status).toBe(401);
      expect(response.headers.get("content-type")).not.toStartWith("text/event-stream");
      expect(await response.text()).toBe("login failed\n");
    }
    expect(await ctl.ok(`[online] ${user.id}`)).toBe("0");
  });

  test("with closeEvent, a refused login is a stream of one close event 4001 (what EventSource can read)", async () => {
    const user = await newUser(ctl);
    for (const token of [`${user.id}!wrong`, ""]) {
      const client = await SseClient.open(`${eventsUrl(server.publicUrl, token)}&closeEvent=1`);
      expect(client.response.status).toBe(200);
      expect(await client.next("the close event")).toMatchObject({ type: "close", data: "4001 login failed" });
      await within(client.ended, "the stream to end");
    }
    expect(await ctl.ok(`[online] ${user.id}`)).toBe("0");
  });

  test("held whispers arrive at login, numbered, before anything live", async () => {
    const user = await newUser(ctl);
    expect(await ctl.ok(`[whisper] ${user.id}!held one`)).toBe("message queued");
    const client = await sseLogin(user);
    const held = await client.next("the held whisper");
    expect(held.data).toBe("held one");
    expect(held.id).toEndWith("!u:1");
    client.cut();
  });
});

describe("events", () => {
  test("a whisper with newlines is one event of several data: lines, reassembled exactly", async () => {
    const user = await newUser(ctl);
    const client = await sseLogin(user);
    expect(await ctl.ok(`[whisper] ${user.id}!first line\nsecond line\n\nfourth`)).toBe("message sent");
    const event = await client.next("the whisper");
    expect(event.type).toBe("message");
    expect(event.data).toBe("first line\nsecond line\n\nfourth");
    // The login's starting points first (channel 1's), the event's own source last.
    expect(event.id).toMatch(/^[A-Za-z0-9_-]+!1:\d+,u:1$/);
    client.cut();
  });

  test("a shout reaches SSE and WebSocket members alike; the id carries every source, the event's own last", async () => {
    const [a, b] = [await newUser(ctl), await newUser(ctl)];
    const channel = await ctl.ok("[newchannel]");
    await ctl.ok(`[join] ${channel}!${a.id}`);
    await ctl.ok(`[join] ${channel}!${b.id}`);
    const sse = await sseLogin(a);
    const ws = await Browser.open(server.publicUrl);
    ws.send(b.token);
    await ctl.ok(`[whisper] ${a.id}!hi`);
    expect((await sse.next()).id).toEndWith(",u:1");
    await within(
      (async () => {
        while ((await ctl.ok(`[count] ${channel}`)) !== "2!2") await Bun.sleep(5);
      })(),
      "both members online",
    );
    expect(await ctl.ok(`[shout] ${channel}!to all`)).toBe("message sent");
    const event = await sse.next("the shout");
    expect(event.data).toBe("to all");
    expect(event.id).toEndWith(`,u:1,${channel}:1`);
    expect(await ws.messages.next("the shout over WebSocket")).toBe("to all");
    sse.cut();
    ws.close();
  });
});

describe("resume with Last-Event-ID", () => {
  test("after a cut, what was sent while away arrives once, in order, then live", async () => {
    const events = await listener();
    const user = await newUser(ctl);
    const channel = await ctl.ok("[newchannel]");
    await ctl.ok(`[join] ${channel}!${user.id}`);
    const first = await sseLogin(user);
    expect(await eventAbout(events, user)).toBe(`[online] ${user.id}`);
    await ctl.ok(`[whisper] ${user.id}!w1`);
    await ctl.ok(`[shout] ${channel}!s1`);
    expect((await first.next()).data).toBe("w1");
    const seen = await first.next();
    expect(seen.data).toBe("s1");
    first.cut();
    expect(await eventAbout(events, user, "[offline]")).toBe(`[offline] ${user.id}`);
    for (let i = 2; i <= 4; i++) {
      await ctl.ok(`[whisper] ${user.id}!w${i}`);
      await ctl.ok(`[shout] ${channel}!s${i}`);
    }
    // What EventSource does by itself when the stream breaks: the same URL, with the last id seen.
    const again = await sseLogin(user, { "Last-Event-ID": first.lastEventId });
    const got: string[] = [];
    for (let i = 0; i < 6; i++) got.push((await again.next("the missed messages")).data);
    // Sources are replayed one after another, each in order.
    expect(got.filter((d) => d.startsWith("w"))).toEqual(["w2", "w3", "w4"]);
    expect(got.filter((d) => d.startsWith("s"))).toEqual(["s2", "s3", "s4"]);
    await ctl.ok(`[whisper] ${user.id}!live`);
    const live = await again.next("the live whisper");
    expect(live.data).toBe("live");
    expect(live.id).toContain(`${channel}:4`);
    expect(live.id).toEndWith("u:5");
    // Nothing else came: no duplicates.
    expect(again.events.size).toBe(0);
    again.cut();
    events.close();
  });

  test("the position may come as the lastEventId parameter (what /webtalk.js sends on its own reconnects)", async () => {
    const user = await newUser(ctl);
    const first = await sseLogin(user);
    await ctl.ok(`[whisper] ${user.id}!one`);
    expect((await first.next()).data).toBe("one");
    first.cut();
    await ctl.ok(`[whisper] ${user.id}!two`);
    const url = `${eventsUrl(server.publicUrl, user.token)}&lastEventId=${encodeURIComponent(first.lastEventId)}`;
    const again = await SseClient.open(url);
    const two = await again.next("the missed whisper");
    expect(two.data).toBe("two");
    expect(two.id).toEndWith(",u:2");
    again.cut();
  });

  test("a Last-Event-ID that is not a position resumes nothing: live from the login, held whispers first", async () => {
    const user = await newUser(ctl);
    await ctl.ok(`[whisper] ${user.id}!held`);
    const client = await sseLogin(user, { "Last-Event-ID": "not!a:position,u:x" });
    expect((await client.next()).data).toBe("held");
    client.cut();
  });

  test("a channel past the replay window is an event of type gap naming it, then what the window holds, then live", async () => {
    const small = await startTestServer({ replayCount: 3 });
    const smallCtl = await ControlClient.connect(small.private.port);
    const user = await newUser(smallCtl);
    const channel = await smallCtl.ok("[newchannel]");
    await smallCtl.ok(`[join] ${channel}!${user.id}`);
    const first = await sseLogin(user, {}, small);
    await smallCtl.ok(`[shout] ${channel}!before`);
    expect((await first.next()).data).toBe("before");
    first.cut();
    for (let i = 0; i < 10; i++) await smallCtl.ok(`[shout] ${channel}!away ${i}`);
    const again = await sseLogin(user, { "Last-Event-ID": first.lastEventId }, small);
    const gap = await again.next("the gap");
    expect(gap.type).toBe("gap");
    expect(gap.data).toBe(channel);
    // The gap forgets the source's position: a reconnect from here does not claim what it never had.
    expect(gap.id).not.toContain(`${channel}:`);
    for (let i = 7; i < 10; i++) {
      const kept = await again.next("what the window holds");
      expect([kept.data, kept.id.endsWith(`${channel}:${i + 2}`)]).toEqual([`away ${i}`, true]);
    }
    await smallCtl.ok(`[shout] ${channel}!after`);
    expect((await again.next("the live shout")).data).toBe("after");
    again.cut();
    smallCtl.close();
    await small.stop();
  });
});

describe("final close events", () => {
  test("--duplicate reject: a second login gets a stream that is only a close event 4002; the first keeps receiving", async () => {
    const own = await startTestServer({ duplicate: "reject" });
    const ownCtl = await ControlClient.connect(own.private.port);
    const user = await newUser(ownCtl);
    const first = await sseLogin(user, {}, own);
    const second = await SseClient.open(eventsUrl(own.publicUrl, user.token));
    expect(second.response.status).toBe(200);
    expect(await second.next("the close event")).toMatchObject({ type: "close", data: "4002 replaced by another login" });
    await within(second.ended, "the refused stream to end");
    await ownCtl.ok(`[whisper] ${user.id}!still the first`);
    expect((await first.next()).data).toBe("still the first");
    first.cut();
    ownCtl.close();
    await own.stop();
  });

  test("kicked: an event of type close with code and reason, then the stream ends", async () => {
    const user = await newUser(ctl);
    const client = await sseLogin(user);
    await ctl.ok(`[kick] ${user.id}`);
    const close = await client.next("the close event");
    expect(close).toMatchObject({ type: "close", data: "4005 kicked" });
    await within(client.ended, "the stream to end");
  });

  test("replaced: a second login (SSE or WebSocket) closes the first stream with 4002", async () => {
    const user = await newUser(ctl);
    const first = await sseLogin(user);
    const second = await sseLogin(user);
    expect(await first.next("the close event")).toMatchObject({ type: "close", data: "4002 replaced by another login" });
    await within(first.ended, "the first stream to end");
    const ws = await Browser.open(server.publicUrl);
    ws.send(user.token);
    expect(await second.next("the close event")).toMatchObject({ type: "close", data: "4002 replaced by another login" });
    await ctl.ok(`[whisper] ${user.id}!to the websocket`);
    expect(await ws.messages.next()).toBe("to the websocket");
    ws.close();
  });

  test("killed: close 4004, and the browser's reconnect is then a 401 (EventSource stops for good)", async () => {
    const user = await newUser(ctl);
    const client = await sseLogin(user);
    await ctl.ok(`[killuser] ${user.id}`);
    expect(await client.next("the close event")).toMatchObject({ type: "close", data: "4004 user killed" });
    await within(client.ended, "the stream to end");
    const again = await fetch(eventsUrl(server.publicUrl, user.token), { headers: { "Last-Event-ID": client.lastEventId } });
    expect(again.status).toBe(401);
    await again.text();
  });

  test("a server shutdown ends streams without a close event: the browser reconnects by itself", async () => {
    const own = await startTestServer();
    const ownCtl = await ControlClient.connect(own.private.port);
    const client = await sseLogin(await newUser(ownCtl), {}, own);
    ownCtl.close();
    await own.stop();
    await within(client.ended, "the stream to end");
    // Only the login's notices (sseLogin took the epoch; the at event may remain): no close event.
    const left: string[] = [];
    while (client.events.size > 0) left.push((await client.events.next()).type);
    expect(left.filter((type) => type !== "at")).toEqual([]);
  });
});

describe("limits", () => {
  test("a comment line at least every --sse-ping seconds", async () => {
    const own = await startTestServer({ ssePing: 0.1 });
    const ownCtl = await ControlClient.connect(own.private.port);
    const client = await sseLogin(await newUser(ownCtl), {}, own);
    // Three comments arrive on an otherwise silent stream, well within the wait.
    await client.comments.take(3, "keep-alive comments");
    client.cut();
    ownCtl.close();
    await own.stop();
  });

  test("a quiet stream outlives Bun's 10 s HTTP idle timeout (--sse-ping above it)", async () => {
    const own = await startTestServer({ ssePing: 60 });
    const ownCtl = await ControlClient.connect(own.private.port);
    const user = await newUser(ownCtl);
    const client = await sseLogin(user, {}, own);
    // Nothing at all for 12 s: without the stream's own timeout lifted, Bun ends it after 10.
    await Bun.sleep(12_000);
    await ownCtl.ok(`[whisper] ${user.id}!after the quiet`);
    expect((await client.next("the whisper")).data).toBe("after the quiet");
    client.cut();
    ownCtl.close();
    await own.stop();
  }, 30_000);

  test("--origins: another origin is 403 with no stream; an allowed one gets CORS headers", async () => {
    const own = await startTestServer({ origins: ["https://app.example"] });
    const ownCtl = await ControlClient.connect(own.private.port);
    const user = await newUser(ownCtl);
    const refused = await fetch(eventsUrl(own.publicUrl, user.token), { headers: { Origin: "https://evil.example" } });
    expect(refused.status).toBe(403);
    expect(refused.headers.get("access-control-allow-origin")).toBeNull();
    await refused.text();
    expect(await ownCtl.ok(`[online] ${user.id}`)).toBe("0");
    const allowed = await sseLogin(user, { Origin: "https://app.example" }, own);
    expect(allowed.response.headers.get("access-control-allow-origin")).toBe("https://app.example");
    const preflight = await fetch(eventsUrl(own.publicUrl, user.token), {
      method: "OPTIONS",
      headers: { Origin: "https://app.example", "Access-Control-Request-Headers": "last-event-id" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-headers")).toContain("Last-Event-ID");
    allowed.cut();
    ownCtl.close();
    await own.stop();
  });

  test("--max-connections counts SSE streams and WebSockets together", async () => {
    const own = await startTestServer({ maxConnections: 1 });
    const ownCtl = await ControlClient.connect(own.private.port);
    const client = await sseLogin(await newUser(ownCtl), {}, own);
    const second = await fetch(eventsUrl(own.publicUrl, (await newUser(ownCtl)).token));
    expect(second.status).toBe(503);
    await second.text();
    const ws = new WebSocket(own.publicUrl);
    const refused = await within(
      new Promise<boolean>((resolve) => {
        ws.onopen = () => resolve(false);
        ws.onerror = () => resolve(true);
      }),
      "the WebSocket upgrade to be refused",
    );
    expect(refused).toBe(true);
    client.cut();
    ownCtl.close();
    await own.stop();
  });
});
