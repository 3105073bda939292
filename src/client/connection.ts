// One control connection seen from a backend: framed payloads out, one reply per payload back in
// order, unsolicited event frames aside, and a new connection after the old one drops.
// Built on node:net so the same code runs on Bun and on Node.js.

import { createConnection, type Socket } from "node:net";
import { connect as connectTls, type ConnectionOptions as TlsOptions } from "node:tls";
import { encodeFrames, fitsInFrame, FrameDecoder, MAX_PAYLOAD } from "../protocol/frame.ts";

export interface ReconnectOptions {
  /** First delay before reconnecting; each failed attempt doubles it (default 100 ms). */
  minDelayMs?: number;
  /** The cap on the doubled delay (default 5000 ms). Every delay is a random fraction of it (full jitter). */
  maxDelayMs?: number;
}

export interface ConnectionOptions {
  host: string;
  port: number;
  /** TLS options when the control port uses TLS (`--private-tls`); undefined for plain TCP. */
  tls: TlsOptions | undefined;
  /** false: a dropped connection stays dropped, and every later command rejects. */
  reconnect: false | ReconnectOptions;
  /** Frames that are not replies (`[online] 5`, …), in arrival order. */
  onEvent: (payload: string) => void;
  /** Called on every (re)connection, before anything queued is sent: what it `greet`s goes out first. */
  onConnect: (reconnected: boolean) => void;
  /** The connection dropped; replies still due have been rejected. */
  onDisconnect: () => void;
}

/** The connection dropped before the reply came: the command may or may not have run. */
export class WebtalkConnectionError extends Error {
  override name = "WebtalkConnectionError";
}

interface Pending {
  payload: string;
  resolve: (reply: string) => void;
  reject: (error: Error) => void;
}

export class ControlConnection {
  #options: ConnectionOptions;
  #socket: Socket | undefined;
  #decoder = new FrameDecoder();
  #text = new TextDecoder();
  /** Sent, awaiting their replies, oldest first. */
  #inFlight: Pending[] = [];
  /** Asked for while disconnected, or not yet flushed. */
  #outbox: Pending[] = [];
  #flushScheduled = false;
  #attempt = 0;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #everConnected = false;

  constructor(options: ConnectionOptions) {
    this.#options = options;
  }

  /** Sends one payload; resolves with the whole reply payload (`[ok] …` or `[error] …`). */
  request(payload: string): Promise<string> {
    return this.#enqueue([payload], false)[0]!;
  }

  /** Sends payloads ahead of everything queued (from `onConnect`: authentication, `[listen]`). */
  greet(payloads: string[]): Promise<string>[] {
    return this.#enqueue(payloads, true);
  }

  /** Says goodbye once everything already asked for has been answered, then stops for good. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retry);
    if (!this.#socket) {
      for (const p of this.#outbox.splice(0)) p.reject(new WebtalkConnectionError("the client is closed"));
      return;
    }
    // The goodbye frame (`00000`) is answered after every command sent before it, then the server hangs up.
    const goodbye = new Promise<unknown>((resolve) => this.#outbox.push({ payload: "", resolve, reject: resolve }));
    this.#scheduleFlush();
    await goodbye;
    this.#socket?.destroy();
  }

  #enqueue(payloads: string[], first: boolean): Promise<string>[] {
    const entries: Pending[] = [];
    const promises = payloads.map((payload) => {
      if (this.#closed) return Promise.reject(new WebtalkConnectionError("the client is closed"));
      // Checked now, so an oversized payload fails at its call rather than the whole batch at the flush.
      if (!fitsInFrame(payload)) return Promise.reject(new RangeError(`a payload over ${MAX_PAYLOAD} bytes does not fit in a frame`));
      return new Promise<string>((resolve, reject) => entries.push({ payload, resolve, reject }));
    });
    if (first) this.#outbox.unshift(...entries);
    else this.#outbox.push(...entries);
    this.#scheduleFlush();
    return promises;
  }

  /** Opens the connection; rejects when this attempt fails (drops after it are reconnected). */
  dial(): Promise<void> {
    const { host, port, tls } = this.#options;
    return new Promise<void>((resolve, reject) => {
      const socket = tls ? connectTls({ host, port, ...tls }) : createConnection({ host, port });
      socket.setNoDelay(true);
      socket.once(tls ? "secureConnect" : "connect", () => {
        socket.off("error", reject);
        this.#attach(socket);
        resolve();
      });
      socket.once("error", reject);
    });
  }

  #attach(socket: Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    this.#socket = socket;
    this.#decoder = new FrameDecoder();
    const reconnected = this.#everConnected;
    this.#attempt = 0;
    this.#everConnected = true;
    socket.on("data", (chunk: Uint8Array) => this.#receive(chunk));
    socket.on("error", () => {
      // A 'close' follows every 'error': the loss is handled there.
    });
    socket.on("close", () => this.#lost(socket));
    this.#options.onConnect(reconnected);
    this.#scheduleFlush();
  }

  #receive(chunk: Uint8Array): void {
    for (const frame of this.#decoder.push(chunk)) {
      if (frame.kind !== "payload") continue;
      const payload = this.#text.decode(frame.bytes);
      if (payload.startsWith("[ok] ") || payload.startsWith("[error] ")) this.#inFlight.shift()?.resolve(payload);
      else this.#options.onEvent(payload);
    }
  }

  #lost(socket: Socket): void {
    if (this.#socket !== socket) return;
    this.#socket = undefined;
    for (const p of this.#inFlight.splice(0)) {
      p.reject(new WebtalkConnectionError(`connection lost before the reply to ${p.payload.slice(0, 40)}; it may or may not have run`));
    }
    if (this.#closed) return;
    this.#options.onDisconnect();
    if (this.#options.reconnect === false) {
      this.#closed = true;
      for (const p of this.#outbox.splice(0)) p.reject(new WebtalkConnectionError("connection lost"));
      return;
    }
    this.#scheduleRetry(this.#options.reconnect);
  }

  #scheduleRetry({ minDelayMs = 100, maxDelayMs = 5000 }: ReconnectOptions): void {
    const ceiling = Math.min(maxDelayMs, minDelayMs * 2 ** this.#attempt);
    this.#attempt++;
    this.#retry = setTimeout(() => {
      if (this.#closed) return;
      this.dial().catch(() => this.#scheduleRetry({ minDelayMs, maxDelayMs }));
    }, Math.random() * ceiling);
  }

  // Everything asked for in one turn of the event loop goes out in one write.
  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      const socket = this.#socket;
      if (!socket || this.#outbox.length === 0) return;
      const batch = this.#outbox.splice(0);
      this.#inFlight.push(...batch);
      socket.write(encodeFrames(batch.map((p) => p.payload)));
    });
  }
}
