// Real clients for real servers: a byte-level control client and a WebSocket browser, with bounded waits.

import type { Socket } from "bun";
import { afterAll, beforeAll } from "bun:test";
import { createLog } from "../src/observe/log.ts";
import { encodeFrame, encodeFrames, FrameDecoder } from "../src/protocol/frame.ts";
import { WriteQueue } from "../src/transport/write-queue.ts";
import { settings, type Config } from "../src/config/schema.ts";
import { startServer, type Webtalk } from "../src/server.ts";

export const WAIT_MS = 5_000;

/** Rejects when `promise` has not settled within `ms`: every wait in the tests is bounded. */
export function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function defaultConfig(overrides: Partial<Config> = {}): Config {
  const config = Object.fromEntries(settings.map((s) => [s.key, s.default])) as unknown as Config;
  return {
    ...config,
    public: { host: "127.0.0.1", port: 0 },
    private: { host: "127.0.0.1", port: 0 },
    admin: { host: "127.0.0.1", port: 0 },
    logLevel: "silent",
    ...overrides,
  };
}

let servers = 0;

/**
 * Starts a server in this process on free loopback ports. With WEBTALK_TEST_REDIS set to a Redis URL,
 * every server is a cluster node on that Redis with a key prefix of its own: the same suites then
 * prove the cluster mode (see test/redis-mode.test.ts).
 */
export function startTestServer(overrides: Partial<Config> = {}): Promise<Webtalk> {
  const redis = process.env.WEBTALK_TEST_REDIS;
  const cluster = redis && !overrides.data ? { redis, redisPrefix: `suite${process.pid}-${++servers}:` } : {};
  const config = defaultConfig({ ...cluster, ...overrides });
  return startServer(config, createLog(config.logLevel, config.logFormat));
}

/**
 * Starts one server (and one control connection to it) before a test file's tests and ends both after
 * them; `ready` hands them to the file.
 */
export function useServer(ready: (server: Webtalk, ctl: ControlClient) => void, overrides: Partial<Config> = {}): void {
  let server: Webtalk | undefined;
  let ctl: ControlClient | undefined;
  beforeAll(async () => {
    server = await startTestServer(overrides);
    ctl = await ControlClient.connect(server.private.port);
    ready(server, ctl);
  });
  afterAll(async () => {
    ctl?.close();
    await server?.stop();
  });
}

/** An async queue: items pushed by event handlers, taken in order by the test with a bounded wait. */
export class Inbox<T> {
  #items: T[] = [];
  #waiters: ((item: T) => void)[] = [];

  push(item: T): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(item);
    else this.#items.push(item);
  }

  next(what = "a message", ms = WAIT_MS): Promise<T> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise<T>((resolve, reject) => {
      // A waiter that timed out must leave the queue, or it would swallow the next item.
      const waiter = (value: T) => {
        clearTimeout(timer);
        resolve(value);
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      this.#waiters.push(waiter);
    });
  }

  /** Everything that arrives until none has for `quietMs`: what a browser got, without waiting for more. */
  async settled(quietMs: number): Promise<T[]> {
    const out: T[] = [];
    for (;;) {
      const next = await this.next("more", quietMs).catch(() => undefined);
      if (next === undefined) return out;
      out.push(next);
    }
  }

  async take(count: number, what = "messages", ms = WAIT_MS): Promise<T[]> {
    const out: T[] = [];
    for (let i = 0; i < count; i++) out.push(await this.next(`${what} (${i + 1} of ${count})`, ms));
    return out;
  }

  get size(): number {
    return this.#items.length;
  }
}

/** A backend's control connection, speaking raw bytes so tests can split and pipeline at will. */
export class ControlClient {
  readonly replies = new Inbox<string>();
  readonly closed: Promise<void>;
  #decoder = new FrameDecoder();
  #out = new WriteQueue();
  #socket!: Socket<undefined>;
  #text = new TextDecoder();

  private constructor() {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.closed = promise;
    this.#markClosed = resolve;
  }

  #markClosed: () => void;

  static async connect(port: number, host = "127.0.0.1"): Promise<ControlClient> {
    const client = new ControlClient();
    client.#socket = await within(
      Bun.connect({
        hostname: host,
        port,
        socket: {
          data: (_socket, chunk) => {
            for (const frame of client.#decoder.push(chunk)) {
              if (frame.kind === "payload") client.replies.push(client.#text.decode(frame.bytes));
              else client.replies.push(`<${frame.kind}>`);
            }
          },
          drain: (socket) => void client.#out.flush(socket),
          close: () => client.#markClosed(),
          error: () => client.#markClosed(),
        },
      }),
      "control connection",
    );
    return client;
  }

  /** Writes raw bytes or text exactly as given. */
  write(data: string | Uint8Array): void {
    // Queued: a large write is taken by the kernel in parts, and the rest must follow on drain.
    this.#out.write(this.#socket, typeof data === "string" ? new TextEncoder().encode(data) : data);
  }

  /** Sends one framed payload and waits for its reply. */
  async call(payload: string): Promise<string> {
    this.write(encodeFrame(payload));
    return this.replies.next(`reply to ${payload.slice(0, 40)}`);
  }

  /** Sends a framed payload and returns the reply's data, failing unless it is `[ok] …`. */
  async ok(payload: string): Promise<string> {
    const reply = await this.call(payload);
    if (!reply.startsWith("[ok] ")) throw new Error(`${payload} answered ${reply}`);
    return reply.slice(5);
  }

  /** The client's own port: with the server's, it names the connection to `ss`. */
  get localPort(): number {
    return this.#socket.localPort;
  }

  close(): void {
    this.#socket.end();
  }
}

export interface CloseInfo {
  code: number;
  reason: string;
}

/** A browser: a real WebSocket client with its messages and its close in inboxes. */
export class Browser {
  readonly messages = new Inbox<string>();
  readonly closed: Promise<CloseInfo>;
  readonly ws: WebSocket;

  /** The `#at` notices a webtalk.v2 login sent, kept out of `messages` unless the browser was opened with `atNotices`. */
  readonly atNotices: string[] = [];

  private constructor(ws: WebSocket, atNotices: boolean) {
    this.ws = ws;
    const { promise, resolve } = Promise.withResolvers<CloseInfo>();
    this.closed = promise;
    ws.onmessage = (event) => {
      const text = typeof event.data === "string" ? event.data : "<binary>";
      if (!atNotices && text.startsWith("#at ")) return void this.atNotices.push(text);
      this.messages.push(text);
    };
    ws.onclose = (event) => resolve({ code: event.code, reason: event.reason });
  }

  /**
   * Opens a browser. A webtalk.v2 login's `#at` notice (where it started the sources it did not list)
   * is kept apart, in `atNotices`, so that tests of other things see the messages they are about;
   * `atNotices: true` keeps it in `messages`, in order.
   */
  static async open(url: string, protocols?: string | string[], options: { atNotices?: boolean } = {}): Promise<Browser> {
    const ws = new WebSocket(url, protocols);
    const browser = new Browser(ws, options.atNotices ?? false);
    const opened = new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`could not open ${url}`));
    });
    await within(opened, `WebSocket open ${url}`);
    return browser;
  }

  send(text: string | Uint8Array): void {
    this.ws.send(text);
  }

  closedWithin(what = "the browser to be closed"): Promise<CloseInfo> {
    return within(this.closed, what);
  }

  close(): void {
    this.ws.close();
  }
}

export interface User {
  id: number;
  salt: string;
  token: string;
}

export async function newUser(ctl: ControlClient): Promise<User> {
  const data = await ctl.ok("[newuser]");
  const [id, salt] = data.split("!") as [string, string];
  return { id: Number(id), salt, token: data };
}

/** Creates `count` users with pipelined `[newuser]` writes (10,000 a write) and returns their IDs. */
export async function createUsers(ctl: ControlClient, count: number): Promise<number[]> {
  const ids: number[] = [];
  for (let done = 0; done < count; done += 10_000) {
    const batch = Math.min(10_000, count - done);
    ctl.write(encodeFrames(Array.from({ length: batch }, () => "[newuser]")));
    for (const reply of await ctl.replies.take(batch, "[newuser] replies", 30_000)) ids.push(Number(reply.slice(5).split("!")[0]));
  }
  return ids;
}

/**
 * Opens a browser and logs it in, returning once the login has taken effect: a marker whispered
 * while the user is offline is held, and its arrival proves the server has admitted the browser.
 * Also returns the held messages that arrived before the marker.
 */
export async function loggedIn(server: Pick<Webtalk, "publicUrl">, ctl: ControlClient, user?: User): Promise<[Browser, User, string[]]> {
  const who = user ?? (await newUser(ctl));
  const marker = `ready-${who.id}-${Math.random()}`;
  const held = await ctl.call(`[whisper] ${who.id}!${marker}`);
  if (held !== "[ok] message queued") throw new Error(`user ${who.id} is already online (${held})`);
  const browser = await Browser.open(server.publicUrl);
  browser.send(who.token);
  const earlier: string[] = [];
  for (let m = await browser.messages.next("the login marker"); m !== marker; m = await browser.messages.next()) {
    earlier.push(m);
  }
  return [browser, who, earlier];
}

/**
 * A browser's messages up to (not including) the whisper `marker` (`u:N!marker`, as a webtalk.v2 page
 * sees it): what arrived before a point the test chose.
 */
export async function messagesUntil(browser: Browser, marker: string): Promise<string[]> {
  const seen: string[] = [];
  for (;;) {
    const m = await browser.messages.next(`the marker ${marker}`);
    if (m.startsWith("u:") && m.endsWith(`!${marker}`)) return seen;
    seen.push(m);
  }
}

/**
 * Proves a browser received nothing more: a fresh marker whispered to it must be the next message.
 * Works because one browser's messages arrive in the order the control commands ran.
 */
export async function expectNothingMore(ctl: ControlClient, browser: Browser, user: number): Promise<void> {
  const marker = `marker-${Math.random()}`;
  await ctl.ok(`[whisper] ${user}!${marker}`);
  const next = await browser.messages.next("the marker");
  if (next !== marker) throw new Error(`expected nothing before the marker, got ${JSON.stringify(next)}`);
}

/** Frames a payload as the original protocol does (5-digit byte length). */
export function frame(payload: string): Uint8Array {
  return encodeFrame(payload);
}

export function frameText(payload: string): string {
  return new TextDecoder().decode(encodeFrame(payload));
}

/** A WebSocket client at the TCP level, so a test can drop the connection without a close frame. */
export async function rawWebSocket(
  port: number,
  path: string,
  options: { headers?: Record<string, string>; read?: boolean } = {},
): Promise<{ socket: Socket<undefined>; status: string; sendText(text: string): void }> {
  const upgraded = new Inbox<string>();
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data: (s, chunk) => {
        upgraded.push(new TextDecoder().decode(chunk));
        // A client that never reads: after the handshake response it stops taking bytes off the socket.
        if (options.read === false) s.pause();
      },
    },
  });
  const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
  const extra = Object.entries(options.headers ?? {})
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("");
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
  );
  const status = (await upgraded.next("the upgrade response")).split("\r\n")[0]!;
  return {
    status,
    socket,
    sendText(text: string) {
      const payload = new TextEncoder().encode(text);
      if (payload.length > 125) throw new Error("short frames only");
      if (!status.startsWith("HTTP/1.1 101")) throw new Error(`not upgraded: ${status}`);
      const mask = crypto.getRandomValues(new Uint8Array(4));
      const frame = new Uint8Array(6 + payload.length);
      frame[0] = 0x81;
      frame[1] = 0x80 | payload.length;
      frame.set(mask, 2);
      payload.forEach((b, i) => (frame[6 + i] = b ^ mask[i % 4]!));
      socket.write(frame);
    },
  };
}

