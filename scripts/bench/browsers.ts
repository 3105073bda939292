// Many browsers in one process, as cheap as possible so the server, not the load generator, is what
// is measured: raw WebSocket over Bun.connect, frames parsed by offset out of each TCP read, message
// payloads read as ASCII digits without decoding strings, one clock reading per read.
//
// Benchmark messages are: `SEQ TIME` (a shout), `wTIME` (a whisper), `pK` (a readiness probe);
// TIME is the sender's wall clock in µs. Anything else counts as "other".
// With protocol "sse" the browsers are Server-Sent Events streams (GET {path}/events) instead.

import type { Socket } from "bun";
import { Histogram } from "./histogram.ts";

interface Conn {
  index: number;
  handshaken: boolean;
  rest: Uint8Array | undefined;
  /** The next shout sequence number this browser expects. */
  next: number;
  probe: number;
  closed: boolean;
  /** SSE: bytes left in the current HTTP chunk (0: a chunk-size line comes next), and event text not yet complete. */
  chunkLeft?: number;
  pending?: string;
}

export interface BrowserStats {
  shouts: number;
  whispers: number;
  others: number;
  /** Shouts that arrived out of order or twice, and sequence numbers skipped. */
  disorder: number;
  gaps: number;
  closed: number;
  /** Close codes sent by the server, e.g. {4001: 3}. */
  closeCodes: Record<string, number>;
}

const CRLF2 = Buffer.from("\r\n\r\n");
const CRLF = Buffer.from("\r\n");
const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

/** Wall clock in µs, comparable across processes on one machine. */
export function wallUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

export class BrowserPool {
  readonly latency = new Histogram();
  stats: BrowserStats = emptyStats();
  #conns: Conn[] = [];
  #sockets: Socket<Conn>[] = [];
  #numbered = false;
  #sse = false;

  get size(): number {
    return this.#conns.length;
  }

  /**
   * Opens one browser per token and sends its login, at most `concurrency` handshakes in flight.
   * Resolves when every one is open and has sent its login (or failed to connect).
   */
  async connect(
    url: string,
    tokens: readonly string[],
    concurrency: number,
    protocol?: string,
  ): Promise<{ opened: number; failed: number }> {
    const { hostname, port, pathname } = new URL(url);
    // With webtalk.v2 every message starts `SOURCE:OFFSET!` and notices start `#`: #read skips both.
    this.#sse = protocol === "sse";
    if (protocol && !this.#sse) this.#numbered = true;
    const chosen = protocol && !this.#sse ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : "";
    const upgrade = `GET ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n${chosen}\r\n`;
    let opened = 0;
    let failed = 0;
    let nextToken = 0;
    const pool = this;
    const one = async (): Promise<void> => {
      while (nextToken < tokens.length) {
        const token = tokens[nextToken++]!;
        // An SSE browser logs in with its request; a WebSocket one after the upgrade.
        const request = this.#sse
          ? `GET ${pathname}/events?login=${encodeURIComponent(token)} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAccept: text/event-stream\r\n\r\n`
          : upgrade;
        const conn: Conn = { index: this.#conns.length, handshaken: false, rest: undefined, next: 0, probe: -1, closed: false };
        this.#conns.push(conn);
        const { promise, resolve } = Promise.withResolvers<boolean>();
        try {
          const socket = await Bun.connect<Conn>({
            hostname,
            port: Number(port),
            ...sourceAddress(hostname, conn.index),
            data: conn,
            socket: {
              open(s) {
                s.write(request);
              },
              data(s, chunk) {
                if (!s.data.handshaken) {
                  const ok = pool.#handshake(s, chunk, token);
                  if (ok !== undefined) resolve(ok);
                } else if (pool.#sse) pool.#readSse(s, chunk);
                else pool.#read(s, chunk);
              },
              close(s) {
                pool.#closed(s.data);
                resolve(false);
              },
              error(s) {
                pool.#closed(s.data);
                resolve(false);
              },
              connectError() {
                resolve(false);
              },
            },
          });
          this.#sockets[conn.index] = socket;
        } catch {
          conn.closed = true;
          failed++;
          continue;
        }
        if (await promise) opened++;
        else failed++;
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, one));
    return { opened, failed };
  }

  /** How many open browsers have seen probe `k` or a later one. */
  probed(k: number): number {
    let count = 0;
    for (const conn of this.#conns) if (!conn.closed && conn.probe >= k) count++;
    return count;
  }

  /** Starts counting shouts afresh: every browser now expects `first` next. */
  expect(first: number): void {
    for (const conn of this.#conns) conn.next = first;
    this.stats = emptyStats();
    this.stats.closed = this.#conns.filter((c) => c.closed).length;
    this.latency.reset();
  }

  /** The lowest next-expected shout across open browsers: every one has seen everything before it. */
  minNext(): number {
    let min = Number.POSITIVE_INFINITY;
    for (const conn of this.#conns) if (!conn.closed && conn.next < min) min = conn.next;
    return min;
  }

  /**
   * Resets every browser and forgets them, so the next server starts from an empty pool. A reset,
   * not a close: 19,000 orderly closes leave 19,000 TIME_WAIT entries for a minute, and with tens of
   * thousands of them on loopback the next run's logins were five to ten times slower.
   */
  closeAll(): void {
    for (const socket of this.#sockets) socket?.terminate();
    this.#sockets = [];
    this.#conns = [];
    this.#numbered = false;
    this.#sse = false;
    this.stats = emptyStats();
  }

  #handshake(s: Socket<Conn>, chunk: Uint8Array, token: string): boolean | undefined {
    const conn = s.data;
    const bytes = conn.rest ? concat(conn.rest, chunk) : chunk;
    const end = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).indexOf(CRLF2);
    if (end < 0) {
      conn.rest = bytes.slice();
      return undefined;
    }
    conn.rest = undefined;
    const status = Buffer.from(bytes.buffer, bytes.byteOffset, 12).toString("latin1");
    if (status !== (this.#sse ? "HTTP/1.1 200" : "HTTP/1.1 101")) {
      s.end();
      return false;
    }
    conn.handshaken = true;
    if (this.#sse) {
      const head = Buffer.from(bytes.buffer, bytes.byteOffset, end).toString("latin1").toLowerCase();
      // Bun streams a response body chunked; without it the body is the bytes as they come (-1).
      conn.chunkLeft = head.includes("transfer-encoding: chunked") ? 0 : -1;
      conn.pending = "";
      if (end + 4 < bytes.length) this.#readSse(s, bytes.subarray(end + 4));
      return true;
    }
    s.write(maskedText(token));
    if (end + 4 < bytes.length) this.#read(s, bytes.subarray(end + 4));
    return true;
  }

  #read(s: Socket<Conn>, chunk: Uint8Array): void {
    const conn = s.data;
    let bytes = chunk;
    if (conn.rest) {
      bytes = concat(conn.rest, chunk);
      conn.rest = undefined;
    }
    const now = wallUs();
    const stats = this.stats;
    let pos = 0;
    const end = bytes.length;
    while (end - pos >= 2) {
      const opcode = bytes[pos]! & 0x0f;
      let length = bytes[pos + 1]! & 0x7f;
      let start = pos + 2;
      if (length === 126) {
        if (end - pos < 4) break;
        length = (bytes[pos + 2]! << 8) | bytes[pos + 3]!;
        start = pos + 4;
      } else if (length === 127) {
        if (end - pos < 10) break;
        length = (bytes[pos + 6]! * 2 ** 24) + ((bytes[pos + 7]! << 16) | (bytes[pos + 8]! << 8) | bytes[pos + 9]!);
        start = pos + 10;
      }
      if (end - start < length) break;
      const stop = start + length;
      if (opcode === 1 && this.#numbered) {
        if (bytes[start] === 35 /* # */) {
          pos = stop;
          continue;
        }
        while (start < stop && bytes[start] !== 33 /* ! */) start++;
        start++;
      }
      if (opcode === 1) {
        const first = bytes[start]!;
        if (first >= 48 && first <= 57) {
          // SEQ TIME
          let seq = 0;
          let i = start;
          for (; i < stop && bytes[i] !== 32; i++) seq = seq * 10 + bytes[i]! - 48;
          let sent = 0;
          for (i++; i < stop; i++) sent = sent * 10 + bytes[i]! - 48;
          stats.shouts++;
          if (seq === conn.next) conn.next++;
          else if (seq > conn.next) {
            stats.gaps += seq - conn.next;
            conn.next = seq + 1;
          } else stats.disorder++;
          this.latency.record(now - sent);
        } else if (first === 119 /* w */) {
          let sent = 0;
          for (let i = start + 1; i < stop; i++) sent = sent * 10 + bytes[i]! - 48;
          stats.whispers++;
          this.latency.record(now - sent);
        } else if (first === 112 /* p */) {
          let k = 0;
          for (let i = start + 1; i < stop; i++) k = k * 10 + bytes[i]! - 48;
          if (k > conn.probe) conn.probe = k;
        } else stats.others++;
      } else if (opcode === 8) {
        const code = length >= 2 ? (bytes[start]! << 8) | bytes[start + 1]! : 1005;
        stats.closeCodes[code] = (stats.closeCodes[code] ?? 0) + 1;
      } else if (opcode === 9) {
        s.write(maskedFrame(0x8a, bytes.slice(start, stop)));
      }
      pos = stop;
    }
    if (pos < end) conn.rest = bytes.slice(pos);
  }

  /** An SSE stream's bytes: HTTP chunks taken apart, events split at blank lines, each `data:` a message. */
  #readSse(s: Socket<Conn>, chunk: Uint8Array): void {
    const conn = s.data;
    let bytes = chunk;
    if (conn.rest) {
      bytes = concat(conn.rest, chunk);
      conn.rest = undefined;
    }
    let text = "";
    let pos = 0;
    if (conn.chunkLeft === -1) {
      text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("latin1");
      pos = bytes.length;
    }
    while (pos < bytes.length) {
      if (conn.chunkLeft! > 0) {
        const take = Math.min(conn.chunkLeft!, bytes.length - pos);
        text += Buffer.from(bytes.buffer, bytes.byteOffset + pos, take).toString("latin1");
        pos += take;
        conn.chunkLeft! -= take;
        continue;
      }
      // A chunk's trailing CRLF, then the next chunk's size line.
      const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
      let lineStart = pos;
      if (view[lineStart] === 13 && view[lineStart + 1] === 10) lineStart += 2;
      const eol = view.indexOf(CRLF, lineStart);
      if (eol < 0 || lineStart >= bytes.length) {
        conn.rest = bytes.slice(pos);
        break;
      }
      conn.chunkLeft = Number.parseInt(view.toString("latin1", lineStart, eol), 16) || 0;
      pos = eol + 2;
    }
    const events = (conn.pending ?? "") + text;
    let start = 0;
    const now = wallUs();
    for (let end = events.indexOf("\n\n", start); end >= 0; end = events.indexOf("\n\n", start)) {
      // Named events (epoch, gap, close) are not messages; comments and retry: carry no data.
      if (!events.startsWith("event: ", start)) {
        const data = events.indexOf("\ndata: ", start);
        if (data >= 0 && data < end) this.#sseMessage(conn, events.slice(data + 7, end), now);
        else if (events.startsWith("data: ", start)) this.#sseMessage(conn, events.slice(start + 6, end), now);
      }
      start = end + 2;
    }
    conn.pending = events.slice(start);
  }

  #sseMessage(conn: Conn, text: string, now: number): void {
    const stats = this.stats;
    const first = text.charCodeAt(0);
    if (first >= 48 && first <= 57) {
      const space = text.indexOf(" ");
      const seq = Number(text.slice(0, space));
      stats.shouts++;
      if (seq === conn.next) conn.next++;
      else if (seq > conn.next) {
        stats.gaps += seq - conn.next;
        conn.next = seq + 1;
      } else stats.disorder++;
      this.latency.record(now - Number(text.slice(space + 1)));
    } else if (first === 119 /* w */) {
      stats.whispers++;
      this.latency.record(now - Number(text.slice(1)));
    } else if (first === 112 /* p */) {
      const k = Number(text.slice(1));
      if (k > conn.probe) conn.probe = k;
    } else stats.others++;
  }

  #closed(conn: Conn): void {
    if (conn.closed) return;
    conn.closed = true;
    this.stats.closed++;
  }
}

/**
 * Loopback browsers are spread over several source addresses (127.0.0.2…): every connection to one
 * server needs its own source port, and past ≈14,000 of them (half the ephemeral range, which Linux
 * prefers for connect) each connect scans for a free port and logins slow down tenfold. Still only
 * 127.0.0.0/8. Bun.connect takes `localAddress` although its types do not declare it.
 */
function sourceAddress(hostname: string, index: number): object {
  if (hostname !== "127.0.0.1" && hostname !== "localhost") return {};
  return { localAddress: `127.0.0.${2 + (index % SOURCE_ADDRESSES)}` };
}

const SOURCE_ADDRESSES = 8;

function emptyStats(): BrowserStats {
  return { shouts: 0, whispers: 0, others: 0, disorder: 0, gaps: 0, closed: 0, closeCodes: {} };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

// Client frames must be masked; a zero mask key leaves the payload as it is.
function maskedText(text: string): Uint8Array {
  return maskedFrame(0x81, Buffer.from(text, "utf8"));
}

function maskedFrame(first: number, payload: Uint8Array): Uint8Array {
  if (payload.length > 125) throw new RangeError("bench client frames are short");
  const frame = new Uint8Array(6 + payload.length);
  frame[0] = first;
  frame[1] = 0x80 | payload.length;
  frame.set(payload, 6);
  return frame;
}
