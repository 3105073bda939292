import type { Socket, TCPSocketListener } from "bun";
import type { ConsolaInstance } from "consola";
import type { EventHub } from "../core/events.ts";
import type { Execute } from "../core/executor.ts";
import { isAuthCommand, type ControlSession } from "../core/session.ts";
import type { Metrics } from "../observe/metrics.ts";
import { errorReply, okReply, Reply } from "../protocol/codes.ts";
import { encodeFrame, encodeFrames, FrameDecoder, type Frame } from "../protocol/frame.ts";
import { BackendUnavailable, StateWriteFailed, type Maybe } from "../state/state.ts";
import { WriteQueue } from "./write-queue.ts";

export interface ControlOptions {
  hostname: string;
  port: number;
  execute: Execute;
  events: EventHub;
  /** Unsent bytes a listening connection may accumulate before it is cut off. */
  listenerBuffer: number;
  /** When true, a connection's first frame must be `[auth] SECRET` (checked by the executor). */
  authRequired: boolean;
  maxConnections: number;
  tls?: { cert: string; key: string };
  metrics: Metrics;
  log: ConsolaInstance;
}

export interface ControlServer {
  port: number;
  /** Stops accepting; answers what connections already sent, then closes them, by `deadline` (ms epoch). */
  stop(deadline: number): Promise<void>;
}

/** Per-connection state, set at open. */
interface Conn {
  session: ControlSession;
  decoder: FrameDecoder;
  out: WriteQueue;
  /** Replies of the read being handled: events raised meanwhile join them, after the replies before them. */
  batch: string[] | undefined;
  /** Frames that arrived while an asynchronous command ran: they wait, so replies stay in order. */
  backlog: Frame[];
  /** The next backlog frame to answer. */
  head: number;
  busy: boolean;
  authenticated: boolean;
  /** No more frames will be read (goodbye, bad header, failed auth, refused): close once flushed. */
  ending: boolean;
  /** The server is stopping: answer what arrives until the peer goes quiet, then close. */
  draining: boolean;
  lastData: number;
  unlisten: (() => void) | undefined;
  counted: boolean;
}

// Past this many unsent reply bytes (a backend that writes but does not read) the connection stops
// being read until the kernel takes them: TCP's own flow control then slows the backend down.
const OUT_HIGH_WATER = 1 << 20;
/** Frames waiting behind an asynchronous command before the connection stops being read. */
const BACKLOG_HIGH_WATER = 10_000;
/** While stopping, a connection is closed once it has sent nothing for this long and all is answered. */
const QUIET_MS = 100;
const DRAIN_POLL_MS = 20;
const TOO_MANY = encodeFrame(errorReply("too many control connections"));
const AUTH_REQUIRED = errorReply("authentication required");

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The private port: framed commands over TCP, one reply per frame, in order. */
export function listenControl(options: ControlOptions): ControlServer {
  const { execute, events, listenerBuffer, metrics, log } = options;
  const sockets = new Set<Socket<Conn>>();

  const send = (socket: Socket<Conn>, replies: string[]): void => {
    if (replies.length === 0) return;
    const { out } = socket.data;
    out.write(socket, encodeFrames(replies));
    if (out.bytes > OUT_HIGH_WATER) socket.pause();
  };

  const settle = (socket: Socket<Conn>): void => {
    const conn = socket.data;
    if (conn.busy || !conn.out.empty) return;
    if (conn.ending || (conn.draining && Date.now() - conn.lastData >= QUIET_MS)) socket.end();
  };

  const listen = (socket: Socket<Conn>): void => {
    const conn = socket.data;
    if (conn.unlisten) return;
    conn.unlisten = events.add((event) => {
      if (conn.batch) return void conn.batch.push(event);
      send(socket, [event]);
      if (conn.out.bytes > listenerBuffer) {
        log.warn(`listener ${socket.remoteAddress} is not reading (${conn.out.bytes} bytes of events unsent); disconnecting it`);
        metrics.listenersDisconnected++;
        stopListening(conn);
        socket.terminate();
      }
    });
  };

  /**
   * Answers `frames` from index `from`. Synchronous replies are gathered into one write; at the first
   * asynchronous one the rest waits in the connection's backlog (read by index, never re-sliced), and
   * frames arriving meanwhile join it, so replies keep the order of the requests.
   */
  const run = (socket: Socket<Conn>, frames: Frame[], from: number): void => {
    const conn = socket.data;
    const replies: string[] = [];
    conn.batch = replies;
    for (let i = from; i < frames.length && !conn.ending; i++) {
      const reply = answer(conn, frames[i]!);
      if (reply instanceof Promise) {
        conn.batch = undefined;
        send(socket, replies);
        conn.busy = true;
        if (frames === conn.backlog) conn.head = i + 1;
        else {
          // The frames may be views into a read buffer: what waits gets bytes of its own.
          conn.backlog = frames.slice(i + 1).map(own);
          conn.head = 0;
        }
        reply.then(
          (text) => finishAsync(socket, text),
          (error: unknown) => {
            if (error instanceof BackendUnavailable) return finishAsync(socket, errorReply("backend unavailable"));
            // Already logged by the state; the reply names the file and the cause.
            if (error instanceof StateWriteFailed) return finishAsync(socket, errorReply(error.message));
            log.error("command failed:", error);
            finishAsync(socket, errorReply("internal error"));
          },
        );
        return;
      }
      replies.push(reply);
    }
    if (frames === conn.backlog) {
      conn.backlog = [];
      conn.head = 0;
      socket.resume();
    }
    conn.batch = undefined;
    send(socket, replies);
    settle(socket);
  };

  const answer = (conn: Conn, frame: Frame): Maybe<string> => {
    if (frame.kind !== "payload") {
      conn.ending = true;
      stopListening(conn);
      if (frame.kind === "goodbye") return okReply(Reply.goodbye);
      return errorReply(`bad frame header ${JSON.stringify(frame.header)}: expected 5 digits; closing`);
    }
    let text: string;
    try {
      text = utf8.decode(frame.bytes);
    } catch {
      return errorReply("payload is not valid UTF-8");
    }
    if (conn.authenticated) return execute(text, conn.session);
    // With a secret set, nothing but [auth] runs until it succeeds, and any failure ends the connection.
    if (!isAuthCommand(text)) {
      conn.ending = true;
      return AUTH_REQUIRED;
    }
    const reply = execute(text, conn.session) as string;
    conn.authenticated = reply === okReply(Reply.authenticated);
    conn.ending = !conn.authenticated;
    return reply;
  };

  const finishAsync = (socket: Socket<Conn>, reply: string): void => {
    const conn = socket.data;
    conn.busy = false;
    send(socket, [reply]);
    run(socket, conn.backlog, conn.head);
  };

  const listener: TCPSocketListener<Conn> = Bun.listen<Conn>({
    hostname: options.hostname,
    port: options.port,
    tls: options.tls,
    socket: {
      open(socket) {
        socket.data = newConn(socket, listen, !options.authRequired);
        sockets.add(socket);
        if (metrics.controlConnections >= options.maxConnections) {
          log.warn(`control connection from ${socket.remoteAddress} refused: ${options.maxConnections} already open`);
          socket.data.ending = true;
          socket.data.out.write(socket, TOO_MANY);
          return settle(socket);
        }
        socket.data.counted = true;
        metrics.controlConnections++;
        socket.setNoDelay(true);
        socket.setKeepAlive(true, 30_000);
        log.debug(`control connection from ${socket.remoteAddress}`);
      },
      data(socket, chunk) {
        const conn = socket.data;
        if (conn.ending) return;
        conn.lastData = Date.now();
        const frames = conn.decoder.push(chunk);
        if (!conn.busy) return run(socket, frames, 0);
        for (const frame of frames) conn.backlog.push(own(frame));
        // A backend that pipelines faster than the backend store answers is read no further for now.
        if (conn.backlog.length - conn.head > BACKLOG_HIGH_WATER) socket.pause();
      },
      drain(socket) {
        if (!socket.data.out.flush(socket)) return;
        socket.resume();
        settle(socket);
      },
      close(socket) {
        stopListening(socket.data);
        if (socket.data.counted) metrics.controlConnections--;
        sockets.delete(socket);
        log.debug(`control connection from ${socket.remoteAddress} closed`);
      },
      error(socket, error) {
        log.debug(`control connection from ${socket.remoteAddress} failed: ${error.message}`);
      },
    },
  });

  // Frames a backend sent just before the signal may still be on their way: keep answering until each
  // connection has gone quiet and everything is written, or the deadline passes.
  async function stop(deadline: number): Promise<void> {
    listener.stop(false);
    for (const socket of sockets) socket.data.draining = true;
    while (sockets.size > 0 && Date.now() < deadline) {
      for (const socket of sockets) settle(socket);
      await Bun.sleep(DRAIN_POLL_MS);
    }
    listener.stop(true);
  }

  return { port: listener.port, stop };
}

function newConn(socket: Socket<Conn>, listen: (socket: Socket<Conn>) => void, authenticated: boolean): Conn {
  return {
    session: { listen: () => listen(socket) },
    decoder: new FrameDecoder(),
    out: new WriteQueue(),
    batch: undefined,
    backlog: [],
    head: 0,
    busy: false,
    authenticated,
    ending: false,
    draining: false,
    lastData: 0,
    unlisten: undefined,
    counted: false,
  };
}

function own(frame: Frame): Frame {
  return frame.kind === "payload" ? { kind: "payload", bytes: frame.bytes.slice() } : frame;
}

function stopListening(conn: Conn): void {
  conn.unlisten?.();
  conn.unlisten = undefined;
}
