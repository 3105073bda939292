// The TypeScript backend client against real servers: every helper, errors, pipelining, reconnection,
// and the same client built for Node.js running under `node`.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, controlAddress, WebtalkConnectionError, WebtalkError, type WebtalkClient } from "../src/client/backend.ts";
import type { Webtalk } from "../src/server.ts";
import { Browser, ControlClient, loggedIn, startTestServer, within } from "./helpers.ts";
import { ROOT, runToExit } from "./process.ts";

let server: Webtalk;
let wt: WebtalkClient;
let ctl: ControlClient;

beforeAll(async () => {
  server = await startTestServer();
  wt = await connect({ host: "127.0.0.1", port: server.private.port });
  ctl = await ControlClient.connect(server.private.port);
});

afterAll(async () => {
  await wt.close();
  ctl.close();
  await server.stop();
});

async function loginBrowser(token: string): Promise<Browser> {
  const browser = await Browser.open(server.publicUrl);
  browser.send(token);
  return browser;
}

describe("helpers", () => {
  test("newUser gives an ID, a salt and the ID!SALT token a browser logs in with", async () => {
    const user = await wt.newUser();
    expect(user.token).toBe(`${user.id}!${user.salt}`);
    expect(user.salt).toMatch(/^[A-Za-z0-9_-]{22,}$/);
    expect(await wt.whisper(user.id, "held")).toBe("queued");
    const browser = await loginBrowser(user.token);
    expect(await browser.messages.next()).toBe("held");
    browser.close();
  });

  test("whisper reports sent to a connected browser; shout reaches channel members", async () => {
    const [browser, user] = await loggedIn(server, ctl);
    expect(await wt.whisper(user.id, "hi ! with bangs\nand lines")).toBe("sent");
    expect(await browser.messages.next()).toBe("hi ! with bangs\nand lines");
    const channel = await wt.newChannel();
    await wt.join(channel, user.id);
    await wt.shout(channel, "to the channel");
    expect(await browser.messages.next()).toBe("to the channel");
    await wt.leave(channel, user.id);
    await wt.shout(channel, "not for you");
    await wt.shout(1, "to everyone");
    expect(await browser.messages.next()).toBe("to everyone");
    await wt.killChannel(channel);
    browser.close();
  });

  test("kill closes the browser with 4004 and the user is gone", async () => {
    const [browser, user] = await loggedIn(server, ctl);
    await wt.kill(user.id);
    expect((await browser.closedWithin()).code).toBe(4004);
    await expect(wt.whisper(user.id, "x")).rejects.toThrow(WebtalkError);
  });

  test("store, retrieve and clear", async () => {
    await wt.store("greeting", "hello!world");
    expect(await wt.retrieve("greeting")).toBe("hello!world");
    await wt.clear("greeting");
    expect(await wt.retrieve("greeting")).toBe("");
  });

  test("command sends anything and resolves with the data after [ok]", async () => {
    expect(await wt.command("[newchannel]")).toMatch(/^\d+$/);
    await expect(wt.command("newchannel")).rejects.toThrow(TypeError);
  });
});

describe("presence", () => {
  test("ping, online, count, members and stats", async () => {
    await wt.ping();
    const [browser, user] = await loggedIn(server, ctl);
    const offline = await wt.newUser();
    expect(await wt.online(user.id)).toBe(true);
    expect(await wt.online(offline.id)).toBe(false);
    const channel = await wt.newChannel();
    await wt.join(channel, user.id);
    await wt.join(channel, offline.id);
    expect(await wt.count(channel)).toEqual({ members: 2, online: 1 });
    expect(await wt.members(channel)).toEqual([user.id, offline.id].sort((a, b) => a - b));
    expect(await wt.members(channel, Math.max(user.id, offline.id))).toEqual([]);
    const stats = await wt.stats();
    expect(Number(stats.users)).toBeGreaterThanOrEqual(2);
    expect(Number(stats.online)).toBeGreaterThanOrEqual(1);
    browser.close();
  });

  test("kick closes the browser with 4005 and keeps the user, who logs in again", async () => {
    const [browser, user] = await loggedIn(server, ctl);
    await wt.kick(user.id);
    expect(await browser.closedWithin()).toEqual({ code: 4005, reason: "kicked" });
    const [again] = await loggedIn(server, ctl, user);
    again.close();
  });

  test("events() yields online, message and offline, typed; a second iterator sees them too", async () => {
    const upstream = await startTestServer({ upstream: true });
    const client = await connect({ port: upstream.private.port });
    const c = await ControlClient.connect(upstream.private.port);
    const events = client.events();
    const other = client.events();
    // The first next() waits for [ok] listening, so nothing below can happen before the server listens.
    const first = events.next();
    await client.ping();
    const [browser, user] = await loggedIn(upstream, c);
    const epoch = { type: "epoch", epoch: expect.stringMatching(/^[\w-]{8,}$/) };
    expect((await within(first, "the epoch event")).value).toEqual(epoch);
    expect((await within(events.next(), "the online event")).value).toEqual({ type: "online", user: user.id });
    browser.send("hello ! from the page");
    expect((await within(events.next(), "the message event")).value).toEqual({ type: "message", user: user.id, text: "hello ! from the page" });
    browser.close();
    expect((await within(events.next(), "the offline event")).value).toEqual({ type: "offline", user: user.id });
    expect((await within(other.next(), "the second iterator")).value).toEqual(epoch);
    expect((await within(other.next(), "the second iterator")).value).toEqual({ type: "online", user: user.id });
    await other.return!();
    await client.close();
    expect((await within(events.next(), "the end of the events")).done).toBe(true);
    c.close();
    await upstream.stop();
  });

  test("events() reports a gap when a resuming webtalk.v2 browser cannot get its messages back", async () => {
    const client = await connect({ port: server.private.port });
    const events = client.events();
    const first = events.next();
    await client.ping();
    const user = await client.newUser();
    const browser = await Browser.open(server.publicUrl, "webtalk.v2");
    // An epoch that is not the server's: nothing after that position can be recovered.
    browser.send(`${user.token}!notTheEpoch!1:5`);
    expect(await browser.messages.take(2)).toEqual([expect.stringMatching(/^#epoch /), "#gap 1"]);
    const seen: unknown[] = [(await within(first, "the first event")).value];
    while (seen.length < 3) seen.push((await within(events.next(), "the gap event")).value);
    expect(seen[0]).toEqual({ type: "epoch", epoch: expect.any(String) });
    expect(seen).toContainEqual({ type: "gap", user: user.id, source: "1" });
    browser.close();
    await client.close();
  });

  test("after a reconnection events() says so and listens again", async () => {
    const first = await startTestServer();
    const port = first.private.port;
    const client = await connect({ port, reconnect: { minDelayMs: 10, maxDelayMs: 50 } });
    const events = client.events();
    const listening = events.next();
    await client.ping();
    const before = (await within(listening, "the first server's epoch")).value as { type: "epoch"; epoch: string };
    expect(before.type).toBe("epoch");
    await first.stop();
    const second = await startTestServer({ private: { host: "127.0.0.1", port } });
    try {
      expect((await within(events.next(), "the reconnected event")).value).toEqual({ type: "reconnected" });
      // A new in-memory server: a new epoch, so the backend knows to create its users again.
      const after = (await within(events.next(), "the second server's epoch")).value as { type: "epoch"; epoch: string };
      expect(after.type).toBe("epoch");
      expect(after.epoch).not.toBe(before.epoch);
      // [listen] is re-sent ahead of anything queued: once this ping is answered, the client listens again.
      await client.ping();
      const c = await ControlClient.connect(port);
      const [browser, user] = await loggedIn(second, c);
      expect((await within(events.next(), "an event on the new connection")).value).toEqual({ type: "online", user: user.id });
      browser.close();
      c.close();
    } finally {
      await client.close();
      await second.stop();
    }
  });
});

describe("errors", () => {
  test("[error] rejects with a WebtalkError carrying the command and the reason", async () => {
    const error = await wt.whisper(999_999, "x").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WebtalkError);
    expect((error as WebtalkError).reason).toBe("no such user 999999");
    expect((error as WebtalkError).command).toBe("[whisper] 999999!x");
    await expect(wt.command("[nonsense]")).rejects.toThrow("unknown command [nonsense]");
  });

  test("a command too large for one frame rejects alone; the others in its batch go through", async () => {
    const big = wt.store("big", "x".repeat(100_000));
    const small = wt.newChannel();
    await expect(big).rejects.toThrow(RangeError);
    expect(await small).toBeGreaterThan(1);
  });

  test("the connection stays usable after an error", async () => {
    await wt.join(999_999, 1).catch(() => undefined);
    expect(await wt.newChannel()).toBeGreaterThan(1);
  });

  test("connect rejects when nothing listens", async () => {
    const gone = await startTestServer();
    const port = gone.private.port;
    await gone.stop();
    await expect(connect({ port, reconnect: false })).rejects.toThrow();
  });
});

describe("secret and TLS", () => {
  const dir = mkdtempSync(join(tmpdir(), "webtalk-client-tls-"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  beforeAll(async () => {
    const args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"];
    expect((await runToExit(["openssl", ...args], { cwd: dir })).code).toBe(0);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("secret is sent as [auth] first; a wrong one rejects connect, none leaves commands refused", async () => {
    const guarded = await startTestServer({ secret: "s3cret" });
    const port = guarded.private.port;
    const client = await connect({ port, secret: "s3cret" });
    expect((await client.newUser()).id).toBeGreaterThan(1);
    await client.close();
    const wrong = await connect({ port, secret: "nope", reconnect: false }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(WebtalkError);
    expect((wrong as WebtalkError).reason).toBe("authentication failed");
    const none = await connect({ port, reconnect: false });
    await expect(none.newUser()).rejects.toThrow("authentication required");
    await none.close();
    await guarded.stop();
  });

  test("after a reconnection [auth] goes out again before the queued commands", async () => {
    const first = await startTestServer({ secret: "s3cret" });
    const port = first.private.port;
    const dropped = Promise.withResolvers<void>();
    const client = await connect({ port, secret: "s3cret", reconnect: { minDelayMs: 10, maxDelayMs: 50 }, onDisconnect: dropped.resolve });
    await first.stop();
    await within(dropped.promise, "the drop");
    const queued = client.newChannel();
    const second = await startTestServer({ secret: "s3cret", private: { host: "127.0.0.1", port } });
    try {
      expect(await within(queued, "the command after re-authenticating")).toBeGreaterThan(1);
    } finally {
      await client.close();
      await second.stop();
    }
  });

  test("tls: a control port with --private-tls, verified against its certificate", async () => {
    const secure = await startTestServer({ tlsCert: cert, tlsKey: key, privateTls: true });
    const client = await connect({ port: secure.private.port, tls: { ca: readFileSync(cert, "utf8"), servername: "localhost" } });
    expect(await client.whisper((await client.newUser()).id, "over TLS")).toBe("queued");
    await client.close();
    // Without the certificate authority the handshake is refused: the check is real.
    await expect(connect({ port: secure.private.port, tls: true, reconnect: false })).rejects.toThrow();
    await secure.stop();
  });
});

describe("pipelining", () => {
  test("2,000 commands in flight at once each get their own reply", async () => {
    const keys = Array.from({ length: 1000 }, (_, i) => `k${i}`);
    const stored = keys.map((k) => wt.store(k, `v-${k}`));
    const read = keys.map((k) => wt.retrieve(k));
    await Promise.all(stored);
    expect(await Promise.all(read)).toEqual(keys.map((k) => `v-${k}`));
  });

  test("a browser receives pipelined whispers in call order", async () => {
    const [browser, user] = await loggedIn(server, ctl);
    const texts = Array.from({ length: 200 }, (_, i) => `m${i}`);
    await Promise.all(texts.map((t) => wt.whisper(user.id, t)));
    expect(await browser.messages.take(texts.length)).toEqual(texts);
    browser.close();
  });
});

describe("address", () => {
  test("options, then WEBTALK_PRIVATE, then 127.0.0.1:12344", () => {
    expect(controlAddress({}, {})).toEqual({ host: "127.0.0.1", port: 12344 });
    expect(controlAddress({}, { WEBTALK_PRIVATE: "10.0.0.5:7000" })).toEqual({ host: "10.0.0.5", port: 7000 });
    expect(controlAddress({}, { WEBTALK_PRIVATE: ":7000" })).toEqual({ host: "127.0.0.1", port: 7000 });
    expect(controlAddress({ port: 1 }, { WEBTALK_PRIVATE: "h:7000" })).toEqual({ host: "h", port: 1 });
  });

  test("connect() with no options reaches the server named by WEBTALK_PRIVATE", async () => {
    const saved = process.env.WEBTALK_PRIVATE;
    process.env.WEBTALK_PRIVATE = `127.0.0.1:${server.private.port}`;
    try {
      const client = await connect();
      expect((await client.newUser()).id).toBeGreaterThan(0);
      await client.close();
    } finally {
      if (saved === undefined) delete process.env.WEBTALK_PRIVATE;
      else process.env.WEBTALK_PRIVATE = saved;
    }
  });
});

describe("lifecycle", () => {
  test("close waits for the replies already due, then later commands reject", async () => {
    const client = await connect({ port: server.private.port });
    const channel = client.newChannel();
    await client.close();
    expect(await channel).toBeGreaterThan(1);
    await expect(client.newChannel()).rejects.toThrow(WebtalkConnectionError);
  });

  test("after the server restarts, the client reconnects and queued commands go through", async () => {
    const first = await startTestServer();
    const port = first.private.port;
    const dropped = Promise.withResolvers<void>();
    const back = Promise.withResolvers<void>();
    const client = await connect({
      port,
      reconnect: { minDelayMs: 10, maxDelayMs: 50 },
      onDisconnect: dropped.resolve,
      onReconnect: back.resolve,
    });
    const before = (await client.newUser()).id;
    await first.stop();
    await within(dropped.promise, "the client to notice the drop");
    // While the server is down the command waits; it runs on the next server once the client is back.
    const queued = client.newUser();
    const second = await startTestServer({ private: { host: "127.0.0.1", port } });
    try {
      // A new in-memory server: a new user, never the first server's ID again.
      expect((await within(queued, "the queued command after reconnecting")).id).toBeGreaterThan(before);
      await within(back.promise, "onReconnect");
    } finally {
      await client.close();
      await second.stop();
    }
  });

  test("with reconnect: false a dropped client stays dropped", async () => {
    const other = await startTestServer();
    const dropped = Promise.withResolvers<void>();
    const client = await connect({ port: other.private.port, reconnect: false, onDisconnect: dropped.resolve });
    await other.stop();
    await within(dropped.promise, "the client to notice the drop");
    await expect(client.newChannel()).rejects.toThrow(WebtalkConnectionError);
  });
});

describe("Node.js", () => {
  const dir = join(ROOT, ".tmp");
  let work: string;
  beforeAll(() => {
    mkdirSync(dir, { recursive: true });
    work = mkdtempSync(join(dir, "node-client-"));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  test("the built client, imported as webtalk/client under node, creates a user and whispers", async () => {
    expect((await runToExit([process.execPath, join(ROOT, "scripts/build-client.ts")])).code).toBe(0);
    const script = join(work, "backend.mjs");
    writeFileSync(
      script,
      `import { connect, WebtalkError } from "webtalk/client";
const wt = await connect();
const user = await wt.newUser();
console.log(user.token);
console.log("whisper", await wt.whisper(user.id, "from node"));
try { await wt.whisper(999999, "x"); } catch (e) { console.log("error", e instanceof WebtalkError, e.reason); }
await wt.close();
console.log("runtime", typeof Bun === "undefined" ? "node " + process.version : "bun");
`,
    );
    const run = await runToExit(["node", script], { env: { ...process.env, WEBTALK_PRIVATE: `127.0.0.1:${server.private.port}` } });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const [token, ...rest] = run.stdout.trim().split("\n");
    expect(rest).toEqual(["whisper queued", "error true no such user 999999", expect.stringMatching(/^runtime node v\d+/)]);
    const browser = await loginBrowser(token!);
    expect(await browser.messages.next()).toBe("from node");
    browser.close();
  });
});
