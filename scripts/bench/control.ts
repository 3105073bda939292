// The backend's side of the control port, built for load: raw frames out (pipelined or one at a time),
// replies counted by scanning headers, decoded only when asked for.

import { WriteQueue } from "../../src/transport/write-queue.ts";
import type { Socket } from "bun";
import { within } from "./within.ts";

const HEADER = 5;
const text = new TextDecoder();

export class ControlConnection {
  /** Replies received, and how many of them were `[error] …`. */
  replies = 0;
  errors = 0;
  #socket!: Socket<undefined>;
  #rest: Uint8Array | undefined;
  #out = new WriteQueue();
  #captured: string[] = [];
  #capture = false;
  #waiters: { count: number; resolve: () => void }[] = [];
  #closed = false;

  static async open(host: string, port: number): Promise<ControlConnection> {
    const conn = new ControlConnection();
    conn.#socket = await within(
      Bun.connect({
        hostname: host,
        port,
        socket: {
          data: (_s, chunk) => conn.#read(chunk),
          drain: (socket) => void conn.#out.flush(socket),
          close: () => void (conn.#closed = true),
          error: () => void (conn.#closed = true),
        },
      }),
      "the control connection",
      10_000,
    );
    conn.#socket.setNoDelay(true);
    return conn;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Writes bytes (one or many frames) in order, queueing what the kernel does not take now. */
  write(bytes: Uint8Array | string): void {
    this.#out.write(this.#socket, typeof bytes === "string" ? Buffer.from(bytes, "utf8") : bytes);
  }

  /** Bytes written but not yet taken by the kernel. */
  get queued(): number {
    return this.#out.bytes;
  }

  /** Resolves once `count` replies in all have arrived. */
  untilReplies(count: number, ms: number): Promise<void> {
    if (this.replies >= count) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push({ count, resolve });
    return within(promise, `${count - this.replies} control replies`, ms);
  }

  /** Sends one payload and returns its reply text (nothing else may be in flight). */
  async call(payload: string, ms = 10_000): Promise<string> {
    this.#capture = true;
    const target = this.replies + 1;
    this.write(frame(payload));
    await this.untilReplies(target, ms);
    this.#capture = false;
    return this.#captured.splice(0).at(-1) ?? "";
  }

  /** Sends many payloads pipelined and returns their replies' texts, in order. */
  async callMany(payloads: readonly string[], ms = 30_000): Promise<string[]> {
    this.#capture = true;
    const target = this.replies + payloads.length;
    for (let i = 0; i < payloads.length; i += 1000) this.write(frames(payloads.slice(i, i + 1000)));
    await this.untilReplies(target, ms);
    this.#capture = false;
    return this.#captured.splice(0);
  }

  close(): void {
    this.#socket.end();
  }

  #read(chunk: Uint8Array): void {
    let bytes = chunk;
    if (this.#rest) {
      const joined = new Uint8Array(this.#rest.length + chunk.length);
      joined.set(this.#rest, 0);
      joined.set(chunk, this.#rest.length);
      bytes = joined;
      this.#rest = undefined;
    }
    let pos = 0;
    let replies = this.replies;
    while (bytes.length - pos >= HEADER) {
      let length = 0;
      for (let i = pos; i < pos + HEADER; i++) length = length * 10 + bytes[i]! - 48;
      const start = pos + HEADER;
      if (bytes.length - start < length) break;
      replies++;
      if (bytes[start + 1] === 101 /* [e */) this.errors++;
      if (this.#capture) this.#captured.push(text.decode(bytes.subarray(start, start + length)));
      pos = start + length;
    }
    this.replies = replies;
    if (pos < bytes.length) this.#rest = bytes.slice(pos);
    if (this.#waiters.length > 0) {
      this.#waiters = this.#waiters.filter((w) => {
        if (replies < w.count) return true;
        w.resolve();
        return false;
      });
    }
  }

}

/** One frame: the payload's UTF-8 length in 5 digits, then the payload. */
export function frame(payload: string): Uint8Array {
  const body = Buffer.from(payload, "utf8");
  const out = Buffer.allocUnsafe(HEADER + body.length);
  out.write(String(body.length).padStart(HEADER, "0"), 0, "latin1");
  body.copy(out, HEADER);
  return out;
}

/** Many ASCII payloads as one buffer of frames (the benchmark's commands are all ASCII). */
export function frames(payloads: readonly string[]): Uint8Array {
  let out = "";
  for (const p of payloads) out += String(p.length).padStart(HEADER, "0") + p;
  return Buffer.from(out, "latin1");
}
