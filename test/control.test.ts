// The private port, end to end over real TCP: every command, every failure, framing edge cases.

import { describe, expect, test } from "bun:test";
import type { Webtalk } from "../src/server.ts";
import { ControlClient, frame, frameText, loggedIn, newUser, startTestServer, useServer } from "./helpers.ts";

let server: Webtalk;
let ctl: ControlClient;
useServer((s, c) => ((server = s), (ctl = c)));

describe("commands", () => {
  test("newuser returns ID!SALT with increasing IDs and a 128-bit+ salt", async () => {
    const a = await ctl.ok("[newuser]");
    const b = await ctl.ok("[newuser]");
    const [idA, saltA] = a.split("!") as [string, string];
    const [idB, saltB] = b.split("!") as [string, string];
    expect(Number(idB)).toBeGreaterThan(Number(idA));
    expect(saltA).toMatch(/^[A-Za-z0-9_-]{22,}$/);
    expect(saltB).not.toBe(saltA);
  });

  test("user and channel IDs are 16 digits from the clock (never an earlier run's), channel 1 exists", async () => {
    const fresh = await startTestServer();
    const c = await ControlClient.connect(fresh.private.port);
    const before = Date.now() * 1000;
    const user = Number((await c.ok("[newuser]")).split("!")[0]);
    const [first, second] = [Number(await c.ok("[newchannel]")), Number(await c.ok("[newchannel]"))];
    expect(user).toBeGreaterThanOrEqual(before);
    expect(String(user)).toMatch(/^\d{16}$/);
    expect(first).toBeGreaterThanOrEqual(before);
    expect(second).toBeGreaterThan(first);
    expect(await c.call("[count] 1")).toBe("[ok] 1!0");
    c.close();
    await fresh.stop();
  });

  test("replies always carry the space after ]", async () => {
    expect(await ctl.call("[store] k!")).toBe("[ok] stored k");
    expect(await ctl.call("[retrieve] k")).toBe("[ok] ");
    ctl.write(frame("[retrieve] nothing-here"));
    // The raw frame of an empty ok is exactly 00005[ok] .
    expect(frameText(await ctl.replies.next())).toBe("00005[ok] ");
  });

  test("killuser, killchannel and their errors", async () => {
    const user = await newUser(ctl);
    expect(await ctl.call(`[killuser] ${user.id}`)).toBe("[ok] user killed");
    expect(await ctl.call(`[killuser] ${user.id}`)).toBe(`[error] no such user ${user.id}`);
    expect(await ctl.call(`[whisper] ${user.id}!hi`)).toBe(`[error] no such user ${user.id}`);
    const channel = await ctl.ok("[newchannel]");
    expect(await ctl.call(`[killchannel] ${channel}`)).toBe("[ok] channel killed");
    expect(await ctl.call(`[killchannel] ${channel}`)).toBe(`[error] no such channel ${channel}`);
    expect(await ctl.call(`[shout] ${channel}!hi`)).toBe(`[error] no such channel ${channel}`);
    expect(await ctl.call(`[join] ${channel}!1`)).toBe(`[error] no such channel ${channel}`);
    const next = await ctl.ok("[newchannel]");
    expect(Number(next)).toBeGreaterThan(Number(channel));
  });

  test("join, leave: idempotent, and errors for unknown IDs", async () => {
    const user = await newUser(ctl);
    const channel = await ctl.ok("[newchannel]");
    expect(await ctl.call(`[join] ${channel}!${user.id}`)).toBe("[ok] user joined");
    expect(await ctl.call(`[join] ${channel}!${user.id}`)).toBe("[ok] user joined");
    expect(await ctl.call(`[leave] ${channel}!${user.id}`)).toBe("[ok] user leaved");
    expect(await ctl.call(`[leave] ${channel}!${user.id}`)).toBe("[ok] user leaved");
    expect(await ctl.call(`[join] ${channel}!999999`)).toBe("[error] no such user 999999");
    expect(await ctl.call(`[leave] 999999!${user.id}`)).toBe("[error] no such channel 999999");
  });

  test("whisper and shout to offline users", async () => {
    const user = await newUser(ctl);
    expect(await ctl.call(`[whisper] ${user.id}!hello`)).toBe("[ok] message queued");
    expect(await ctl.call("[shout] 1!everyone")).toBe("[ok] message sent");
  });

  test("store, retrieve, clear: shared by every control connection", async () => {
    const other = await ControlClient.connect(server.private.port);
    expect(await ctl.call("[store] greeting!héllo! world")).toBe("[ok] stored greeting");
    expect(await other.call("[retrieve] greeting")).toBe("[ok] héllo! world");
    expect(await other.call("[clear] greeting")).toBe("[ok] cleared greeting");
    expect(await ctl.call("[retrieve] greeting")).toBe("[ok] ");
    expect(await ctl.call("[clear] never-set")).toBe("[ok] cleared never-set");
    expect(await ctl.call("[store] !v")).toStartWith("[error] empty key");
    other.close();
  });

  test("a reply that would not fit in one frame is an [error] frame", async () => {
    // "[store] " + key + "!" fits in 99,999 bytes; "[ok] stored " + key does not.
    const key = "k".repeat(99_989);
    expect(await ctl.call(`[store] ${key}!`)).toBe("[error] reply too large for one frame");
    expect(await ctl.call("[ping-after-large]")).toStartWith("[error] unknown command");
  });
});

describe("bad input", () => {
  test.each([
    ["[killuser] -1", '[error] invalid user ID "-1": expected digits'],
    ["[killuser] +5", '[error] invalid user ID "+5": expected digits'],
    ["[killuser]  5", '[error] invalid user ID " 5": expected digits'],
    ["[killuser] 5x", '[error] invalid user ID "5x": expected digits'],
    ["[killuser]", '[error] invalid user ID "": expected digits'],
    ["[killuser] ", '[error] invalid user ID "": expected digits'],
    ["[whisper] 1", '[error] missing "!" in "1": expected ID!MESSAGE'],
    ["[shout] x!hi", '[error] invalid channel ID "x": expected digits'],
    ["[join] 1!", '[error] invalid user ID "": expected digits'],
    ["[join] 1", '[error] missing "!" in "1": expected CHAN!USER'],
    ["[killchannel] 1.5", '[error] invalid channel ID "1.5": expected digits'],
    ["[frobnicate] 1", "[error] unknown command [frobnicate]"],
    ["hello", '[error] malformed command "hello": expected [command]'],
    ["[newuser]x", '[error] malformed command "[newuser]x": expected a space after [newuser]'],
    ["[newuser] extra", '[error] [newuser] takes no data, got "extra"'],
    ["[toString]", "[error] unknown command [toString]"],
  ])("%p answers %p and the connection stays usable", async (payload, reply) => {
    expect(await ctl.call(payload)).toBe(reply);
    expect(await ctl.call("[retrieve] x")).toStartWith("[ok] ");
  });

  test("an ID that does not exist is an error, even a huge one", async () => {
    expect(await ctl.call("[whisper] 99999999999999999999999!x")).toStartWith("[error] no such user");
  });

  test("invalid UTF-8 is an [error], not mojibake", async () => {
    const payload = new Uint8Array([...new TextEncoder().encode("[store] k!"), 0xff, 0xfe]);
    const bytes = new Uint8Array(5 + payload.length);
    bytes.set(new TextEncoder().encode(String(payload.length).padStart(5, "0")));
    bytes.set(payload, 5);
    ctl.write(bytes);
    expect(await ctl.replies.next()).toBe("[error] payload is not valid UTF-8");
    expect(await ctl.call("[retrieve] k")).toBe("[ok] ");
  });

  test("a header that is not 5 digits answers [error] and closes that connection only", async () => {
    const bad = await ControlClient.connect(server.private.port);
    bad.write("12a45[newuser]");
    expect(await bad.replies.next()).toBe('[error] bad frame header "12a45": expected 5 digits; closing');
    await bad.closed;
    expect(await ctl.call("[retrieve] x")).toBe("[ok] ");
  });

  test("00000 answers goodbye and closes; nothing after it runs", async () => {
    const c = await ControlClient.connect(server.private.port);
    c.write(new Uint8Array([...frame("[store] bye!1"), ...new TextEncoder().encode("00000"), ...frame("[store] bye!2")]));
    expect(await c.replies.next()).toBe("[ok] stored bye");
    expect(await c.replies.next()).toBe("[ok] goodbye");
    await c.closed;
    expect(await ctl.call("[retrieve] bye")).toBe("[ok] 1");
  });
});

describe("framing", () => {
  test("frames split one byte at a time get one reply each, in order", async () => {
    const c = await ControlClient.connect(server.private.port);
    const bytes = new Uint8Array([...frame("[store] split!é€😀"), ...frame("[retrieve] split")]);
    for (const byte of bytes) {
      c.write(new Uint8Array([byte]));
      await Bun.sleep(1); // pace the writes so the bytes reach the server in separate reads
    }
    expect(await c.replies.next()).toBe("[ok] stored split");
    expect(await c.replies.next()).toBe("[ok] é€😀");
    c.close();
  });

  test("many pipelined frames in one write: every one answered, in order", async () => {
    const c = await ControlClient.connect(server.private.port);
    const count = 5000;
    const parts: number[] = [];
    for (let i = 0; i < count; i++) parts.push(...frame(`[store] p${i}!${i}`));
    c.write(new Uint8Array(parts));
    const replies = await c.replies.take(count, "pipelined replies");
    replies.forEach((reply, i) => expect(reply).toBe(`[ok] stored p${i}`));
    c.close();
  });

  test("the length counts UTF-8 bytes, not characters", async () => {
    const text = "[store] utf!日本語😀";
    const encoded = new TextEncoder().encode(text);
    expect(encoded.length).not.toBe(text.length);
    ctl.write(`${String(encoded.length).padStart(5, "0")}${text}`);
    expect(await ctl.replies.next()).toBe("[ok] stored utf");
    const raw = frameText(`[ok] 日本語😀`);
    expect(raw.slice(0, 5)).toBe(String(new TextEncoder().encode("[ok] 日本語😀").length).padStart(5, "0"));
    expect(await ctl.call("[retrieve] utf")).toBe("[ok] 日本語😀");
  });

  test("a frame of the largest size is accepted", async () => {
    const value = "v".repeat(99_999 - "[store] big!".length);
    expect(await ctl.call(`[store] big!${value}`)).toBe("[ok] stored big");
    expect(await ctl.call("[retrieve] big")).toBe(`[ok] ${value}`);
  });

  test("one connection's bad input does not disturb another's pipelined commands", async () => {
    const good = await ControlClient.connect(server.private.port);
    const bad = await ControlClient.connect(server.private.port);
    bad.write("0001");
    good.write(frame("[store] iso!1"));
    bad.write("x[newuser]");
    expect(await good.replies.next()).toBe("[ok] stored iso");
    expect(await bad.replies.next()).toStartWith("[error] bad frame header");
    await bad.closed;
    expect(await good.call("[retrieve] iso")).toBe("[ok] 1");
    good.close();
  });
});

describe("message text", () => {
  test("a message is everything after the first ! and may hold !, newlines and UTF-8, or be empty", async () => {
    const [browser, user] = await loggedIn(server, ctl);
    const texts = ["a!b!c", "line1\nline2\r\n", "", "ünïcødé ✓ 😀", "!"];
    for (const text of texts) expect(await ctl.call(`[whisper] ${user.id}!${text}`)).toBe("[ok] message sent");
    expect(await browser.messages.take(texts.length)).toEqual(texts);
    browser.close();
  });
});
