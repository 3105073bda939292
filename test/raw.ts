// A raw TCP connection for hostile clients: writes exactly the bytes given, in as many writes as asked,
// keeps the start of what comes back, and waits (bounded) on arrivals instead of sleeping.

import type { Socket } from "bun";
import { WriteQueue } from "../src/transport/write-queue.ts";

/** Bytes of the peer's output kept for checks; the rest is only counted. */
const KEEP = 64 * 1024;

export class RawConnection {
  bytesIn = 0;
  isClosed = false;
  readonly closed: Promise<void>;
  #socket!: Socket<undefined>;
  #out = new WriteQueue();
  #ending = false;
  #kept: Uint8Array[] = [];
  #keptBytes = 0;
  #tick = Promise.withResolvers<void>();
  #onData: ((chunk: Uint8Array) => void) | undefined;
  #markClosed: () => void;

  private constructor(onData: ((chunk: Uint8Array) => void) | undefined) {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.closed = promise;
    this.#markClosed = resolve;
    this.#onData = onData;
  }

  /** Connects to 127.0.0.1:port; `onData` sees every chunk as it arrives. */
  static async open(port: number, onData?: (chunk: Uint8Array) => void): Promise<RawConnection> {
    const conn = new RawConnection(onData);
    const gone = () => {
      conn.isClosed = true;
      conn.#markClosed();
      conn.#wake();
    };
    conn.#socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data: (_socket, chunk) => conn.#received(chunk),
        drain: () => conn.#flush(),
        close: gone,
        error: gone,
        connectError: gone,
        end: gone,
      },
    });
    conn.#socket.setNoDelay(true);
    return conn;
  }

  /** Queues bytes; what the kernel does not take now goes out on drain, in order. */
  write(data: Uint8Array | string): void {
    if (this.isClosed) return;
    this.#out.write(this.#socket, typeof data === "string" ? new TextEncoder().encode(data) : data);
  }

  /** Writes `data` in the given number of pieces split at random points, yielding between them. */
  async writeSplit(data: Uint8Array, cuts: number[]): Promise<void> {
    let start = 0;
    for (const cut of [...cuts].sort((a, b) => a - b)) {
      if (cut <= start || cut >= data.length) continue;
      this.write(data.subarray(start, cut));
      start = cut;
      // A macrotask between pieces, so they tend to leave in separate packets.
      await Bun.sleep(0);
      if (this.isClosed) return;
    }
    this.write(data.subarray(start));
  }

  /** Half-closes once everything queued is written. */
  end(): void {
    this.#ending = true;
    if (this.#out.empty) this.#socket.end();
  }

  /** Drops the connection at once, as a client that vanishes. */
  terminate(): void {
    this.#socket.terminate();
  }

  /** Resolves true once `condition` holds, false when the connection closed or `ms` passed first. */
  async until(condition: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (condition()) return true;
      const left = deadline - Date.now();
      if (this.isClosed || left <= 0) return condition();
      let timer: Timer | undefined;
      await Promise.race([this.#tick.promise, new Promise((resolve) => (timer = setTimeout(resolve, left)))]);
      clearTimeout(timer);
    }
  }

  /** The first 64 KiB received, as text. */
  text(): string {
    return new TextDecoder().decode(Buffer.concat(this.#kept));
  }

  #received(chunk: Uint8Array): void {
    this.bytesIn += chunk.length;
    if (this.#keptBytes < KEEP) {
      this.#kept.push(chunk.slice(0, KEEP - this.#keptBytes));
      this.#keptBytes += Math.min(chunk.length, KEEP - this.#keptBytes);
    }
    this.#onData?.(chunk);
    this.#wake();
  }

  #flush(): void {
    if (this.#out.flush(this.#socket) && this.#ending) this.#socket.end();
  }

  #wake(): void {
    const tick = this.#tick;
    this.#tick = Promise.withResolvers<void>();
    tick.resolve();
  }
}
