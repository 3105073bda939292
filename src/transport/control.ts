import type { Socket, TCPSocketListener } from "bun";
import type { ConsolaInstance } from "consola";
import type { EventHub } from "../core/events.ts";
import type { Execute } from "../core/executor.ts";
import type { ControlSession } from "../core/session.ts";
import type { Metrics } from "../observe/metrics.ts";
import { errorReply, okReply, Reply } from "../protocol/codes.ts";
import { encodeFrames, FrameDecoder, type Frame } from "../protocol/frame.ts";
import type { Maybe } from "../state/state.ts";

export interface ControlOptions {
  hostname: string;
  port: number;
  execute: Execute;
  events: EventHub;
  /** Unsent bytes a listening connection may accumulate before it is cut off. */
  listenerBuffer: number;
  metrics: Metrics;
  log: ConsolaInstance;
}

/** Per-connection state, set at open: the frame decoder and the replies not yet taken by the kernel. */
interface Conn {
  session: ControlSession;
  /** Replies of the read being handled: events raised meanwhile join them, so they follow the replies before them. */
  batch: string[] | undefined;
  unlisten: (() => void) | undefined;
  decoder: FrameDecoder;
  out: Uint8Array[];
  outBytes: number;
  /** Frames that arrived while an asynchronous command was running: they wait, so replies stay in order. */
  backlog: Frame[];
  busy: boolean;
  ending: boolean;
}

// Past this many unsent reply bytes (a backend that writes but does not read) the connection stops
// being read until the kernel takes them: TCP's own flow control then slows the backend down.
const OUT_HIGH_WATER = 1 << 20;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The private port: framed commands over plain TCP, one reply per frame, in order. */
export function listenControl(options: ControlOptions): TCPSocketListener<Conn> {
  const { hostname, port, execute, events, listenerBuffer, metrics, log } = options;

  const listen = (socket: Socket<Conn>): void => {
    const conn = socket.data;
    if (conn.unlisten) return;
    conn.unlisten = events.add((event) => {
      if (conn.batch) return void conn.batch.push(event);
      send(socket, [event]);
      if (conn.outBytes > listenerBuffer) {
        log.warn(`listener ${socket.remoteAddress} is not reading: ${conn.outBytes} bytes of events unsent; disconnecting it`);
        metrics.listenersDisconnected++;
        stopListening(conn);
        socket.terminate();
      }
    });
  };

  const run = (socket: Socket<Conn>, frames: Frame[]): void => {
    const conn = socket.data;
    const replies: string[] = [];
    conn.batch = replies;
    for (let i = 0; i < frames.length; i++) {
      const frame = frames[i]!;
      const reply = replyTo(frame, execute, conn.session);
      if (frame.kind !== "payload") {
        conn.ending = true;
        stopListening(conn);
      }
      if (reply instanceof Promise) {
        conn.batch = undefined;
        send(socket, replies);
        conn.busy = true;
        conn.backlog = frames.slice(i + 1).concat(conn.backlog);
        reply.then(
          (text) => finishAsync(socket, text),
          (error: unknown) => {
            log.error("command failed:", error);
            finishAsync(socket, errorReply("internal error"));
          },
        );
        return;
      }
      replies.push(reply);
      if (conn.ending) break;
    }
    conn.batch = undefined;
    send(socket, replies);
    if (conn.ending) endWhenFlushed(socket);
  };

  const finishAsync = (socket: Socket<Conn>, reply: string): void => {
    const conn = socket.data;
    conn.busy = false;
    const backlog = conn.backlog;
    conn.backlog = [];
    send(socket, [reply]);
    if (conn.ending) return endWhenFlushed(socket);
    run(socket, backlog);
  };

  return Bun.listen<Conn>({
    hostname,
    port,
    socket: {
      open(socket) {
        socket.data = {
          session: { listen: () => listen(socket) },
          batch: undefined,
          unlisten: undefined,
          decoder: new FrameDecoder(),
          out: [],
          outBytes: 0,
          backlog: [],
          busy: false,
          ending: false,
        };
        socket.setNoDelay(true);
        socket.setKeepAlive(true, 30_000);
        metrics.controlConnections++;
        log.debug(`control connection from ${socket.remoteAddress}`);
      },
      data(socket, chunk) {
        const conn = socket.data;
        if (conn.ending) return;
        const frames = conn.decoder.push(chunk);
        if (conn.busy) conn.backlog.push(...frames);
        else run(socket, frames);
      },
      drain(socket) {
        flush(socket);
      },
      close(socket) {
        stopListening(socket.data);
        metrics.controlConnections--;
        log.debug(`control connection from ${socket.remoteAddress} closed`);
      },
      error(socket, error) {
        log.debug(`control connection from ${socket.remoteAddress} failed: ${error.message}`);
      },
    },
  });
}

function stopListening(conn: Conn): void {
  conn.unlisten?.();
  conn.unlisten = undefined;
}

function replyTo(frame: Frame, execute: Execute, session: ControlSession): Maybe<string> {
  if (frame.kind === "goodbye") return okReply(Reply.goodbye);
  if (frame.kind === "bad-header") {
    return errorReply(`bad frame header ${JSON.stringify(frame.header)}: expected 5 digits; closing`);
  }
  let text: string;
  try {
    text = utf8.decode(frame.bytes);
  } catch {
    return errorReply("payload is not valid UTF-8");
  }
  return execute(text, session);
}

/** Queues replies as one write; what the kernel does not take now is written on `drain`. */
function send(socket: Socket<Conn>, replies: string[]): void {
  if (replies.length === 0) return;
  const conn = socket.data;
  const bytes = encodeFrames(replies);
  if (conn.out.length > 0) {
    conn.out.push(bytes);
    conn.outBytes += bytes.length;
  } else {
    const written = socket.write(bytes);
    if (written < bytes.length) {
      const rest = bytes.subarray(Math.max(written, 0));
      conn.out.push(rest);
      conn.outBytes += rest.length;
    }
  }
  if (conn.outBytes > OUT_HIGH_WATER) socket.pause();
}

function flush(socket: Socket<Conn>): void {
  const conn = socket.data;
  while (conn.out.length > 0) {
    const head = conn.out[0]!;
    const written = socket.write(head);
    if (written < head.length) {
      conn.out[0] = head.subarray(Math.max(written, 0));
      conn.outBytes -= Math.max(written, 0);
      return;
    }
    conn.out.shift();
    conn.outBytes -= head.length;
  }
  if (conn.ending) socket.end();
  else socket.resume();
}

function endWhenFlushed(socket: Socket<Conn>): void {
  if (socket.data.out.length === 0) socket.end();
}
