import type { Socket, TCPSocketListener } from "bun";
import type { ConsolaInstance } from "consola";
import type { Execute } from "../core/executor.ts";
import { errorReply, okReply, Reply } from "../protocol/codes.ts";
import { encodeFrames, FrameDecoder, type Frame } from "../protocol/frame.ts";
import type { Maybe } from "../state/state.ts";

export interface ControlOptions {
  hostname: string;
  port: number;
  execute: Execute;
  log: ConsolaInstance;
}

/** Per-connection state, set at open: the frame decoder and the replies not yet taken by the kernel. */
interface Conn {
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
export function listenControl({ hostname, port, execute, log }: ControlOptions): TCPSocketListener<Conn> {
  const run = (socket: Socket<Conn>, frames: Frame[]): void => {
    const conn = socket.data;
    const replies: string[] = [];
    for (let i = 0; i < frames.length; i++) {
      const frame = frames[i]!;
      const reply = replyTo(frame, execute);
      if (frame.kind !== "payload") conn.ending = true;
      if (reply instanceof Promise) {
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
        socket.data = { decoder: new FrameDecoder(), out: [], outBytes: 0, backlog: [], busy: false, ending: false };
        socket.setNoDelay(true);
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
        log.debug(`control connection from ${socket.remoteAddress} closed`);
      },
      error(socket, error) {
        log.debug(`control connection from ${socket.remoteAddress} failed: ${error.message}`);
      },
    },
  });
}

function replyTo(frame: Frame, execute: Execute): Maybe<string> {
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
  return execute(text);
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
