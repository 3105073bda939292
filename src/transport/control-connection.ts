import type { Socket } from "bun";
import type { ConsolaInstance } from "consola";
import type { EventHub } from "../core/events.ts";
import type { Execute } from "../core/executor.ts";
import { isAuthCommand, type ControlSession } from "../core/session.ts";
import type { Metrics } from "../observe/metrics.ts";
import { errorReply, okReply, Reply } from "../protocol/codes.ts";
import { encodeFrame, encodeFrames, FrameDecoder, type Frame } from "../protocol/frame.ts";
import { isInOrder } from "../core/in-order.ts";
import { BackendUnavailable, StateWriteFailed, type Maybe } from "../state/state.ts";
import { WriteQueue } from "./write-queue.ts";

/**
 * Where a control connection is in its life:
 * - `authenticating`: a secret is set and no good `[auth]` came yet; nothing else runs.
 * - `running`: frames are answered as they arrive. Commands issued in order (core/in-order.ts) may
 *   still await their replies: those go out in frame order as they come, later replies behind them.
 * - `awaiting-store`: a barrier is in flight (an asynchronous command not issued in order, or a
 *   `[listen]` behind pending replies), or MAX_IN_FLIGHT replies are pending; later frames wait, in order.
 * - `paused-for-output`: the peer has not taken OUT_HIGH_WATER bytes of replies; later frames wait
 *   (and the socket is not read) until it does.
 * - `closing`: no more frames are answered; the connection ends once its output is flushed and
 *   `closeAt` has come.
 * Draining at shutdown is a flag beside these: the server's, not the connection's, decision.
 */
export type ConnectionState = "authenticating" | "running" | "awaiting-store" | "paused-for-output" | "closing";

/** What a connection needs from its server. */
export interface ConnectionContext {
  execute: Execute;
  events: EventHub;
  /** Bytes of memory a listening connection's unsent events may hold before it is cut off. */
  listenerBuffer: number;
  metrics: Metrics;
  log: ConsolaInstance;
  /** Takes a slot among the authenticated connections; false when none is free. */
  admit(conn: ControlConnection): boolean;
  /** The connection stopped answering frames: it no longer counts as waiting to authenticate. */
  closing(conn: ControlConnection): void;
  /** A wrong secret was sent from this address (logged without flooding, never the attempt). */
  authFailed(address: string): void;
}

// Past this many unsent reply bytes (a backend that writes but does not read) a connection stops
// answering and reading until the peer takes them: replies are never built beyond it, whatever one
// read asked for, and TCP's own flow control then slows the backend down.
export const OUT_HIGH_WATER = 1 << 20;
/** Frames, and bytes, waiting behind an asynchronous command before the connection stops being read. */
const BACKLOG_HIGH_WATER = 10_000;
const BACKLOG_HIGH_WATER_BYTES = 1 << 20;
/**
 * Replies a connection may await at once (a power of two: the size of its ring of reply slots). A
 * backend that pipelines without reading is held here, then by the backlog's high water: bounded.
 * Measured (attack/unbounded-replies, never-reading shouts with --redis, 4 s): RSS growth 129 MB at
 * 4096, 71 MB at 1024, 63 MB at 512, with the same rate (scripts/pipeline-rate.ts): Redis on loopback
 * needs far fewer in flight to stay busy.
 */
export const MAX_IN_FLIGHT = 1024;
const SLOT_MASK = MAX_IN_FLIGHT - 1;
/** Past MAX_IN_FLIGHT, frames run again once this few replies are pending: runs, not one frame per reply. */
const IN_FLIGHT_LOW_WATER = MAX_IN_FLIGHT / 2;
/**
 * Before authenticating, no frame may be longer than this: `[auth] SECRET` is short, and a stranger
 * must not make the server hold a 100 KB partial frame per waiting connection.
 */
export const MAX_AUTH_FRAME = 4096;
/** While stopping, a connection is closed once it has sent nothing for this long and all is answered. */
const QUIET_MS = 100;
/** A failed `[auth]` is answered, and its connection closed, only this long after: guessing is slowed. */
export const AUTH_FAILURE_DELAY_MS = 1_000;
/** A connection the server closes for cause is cut off when its peer has not taken the reason by then. */
const CLOSE_GRACE_MS = 5_000;
export const TOO_MANY_TEXT = errorReply("too many control connections");
const AUTH_REQUIRED = errorReply("authentication required");
const AUTHENTICATED = okReply(Reply.authenticated);

/** A frame whose reply comes later, outside the order of the run (only a failed `[auth]`, the last one). */
const NO_REPLY_YET = Symbol("no reply yet");

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** One control connection: framed commands in, one reply per frame out, in order. */
export class ControlConnection {
  state: ConnectionState;
  /** The server is stopping: answer what arrives until the peer goes quiet, then close. */
  draining = false;
  /** Holds a slot among the authenticated connections (counted in metrics). */
  admitted = false;
  readonly openedAt = Date.now();
  /** Taken at open: the pool of waiting connections is keyed by it, so it must not change. */
  readonly remoteAddress: string;
  /** When the frame now arriving began; 0 when no frame is partly received. */
  frameSince = 0;
  #lastData = 0;
  #closeAt = 0;
  /** The socket has closed. */
  #gone = false;
  /** When set, a closing connection is cut off at this time even if its output is not flushed. */
  #forceAt = 0;
  readonly #socket: Socket<ControlConnection>;
  readonly #ctx: ConnectionContext;
  readonly #session: ControlSession = { listen: (first) => this.#listen(first) };
  readonly #decoder = new FrameDecoder();
  readonly #out = new WriteQueue();
  /** Replies of the run in progress: events raised meanwhile join them, after the replies before them. */
  #batch: string[] | undefined;
  #batchBytes = 0;
  /** Frames waiting (behind an asynchronous command or unread output), read from `#head` on. */
  #backlog: Frame[] = [];
  #head = 0;
  /** Bytes put in the backlog since it was last emptied (an upper bound of what it holds). */
  #backlogBytes = 0;
  #unlisten: (() => void) | undefined;
  /** The first event of a `[listen]` whose reply is not out yet: listening begins right after that reply. */
  #greeting: string | undefined;
  /**
   * Replies still to send, in frame order: reply number `seq` waits in slot `seq & SLOT_MASK` once it
   * is known. `#sentSeq` is the next to send, `#nextSeq` the next to be given a number; made at the
   * first asynchronous reply.
   */
  #slots: (string | undefined)[] | undefined;
  #nextSeq = 0;
  #sentSeq = 0;
  /** Bytes of the known replies waiting in slots. */
  #slotBytes = 0;
  /** The reply frames wait for (a barrier); -1 for none. */
  #barrierSeq = -1;
  /** The reply of a `[listen]` among the pending ones: listening begins right after it is sent; -1 for none. */
  #greetingSeq = -1;
  /** Pending replies whose text is not known yet (the store has not answered). */
  #unanswered = 0;
  /** A flush is queued for the end of this read of the store's link (see `#answered`). */
  #flushAfterRead = false;
  /** A flush is queued for right after this reply (see `#answered`). */
  #flushNow = false;

  constructor(socket: Socket<ControlConnection>, ctx: ConnectionContext, authRequired: boolean) {
    this.#socket = socket;
    this.#ctx = ctx;
    this.remoteAddress = socket.remoteAddress;
    this.state = authRequired ? "authenticating" : "running";
  }



  /** Bytes from the peer: frames are answered now, or wait behind what is in progress. */
  received(chunk: Uint8Array): void {
    if (this.state === "closing") return;
    const now = Date.now();
    this.#lastData = now;
    const frames = this.#decoder.push(chunk);
    // A frame still incomplete after this read began now, unless it was already arriving before.
    if (this.#decoder.pending === 0) this.frameSince = 0;
    else if (frames.length > 0 || this.frameSince === 0) this.frameSince = now;
    if (this.state === "authenticating" && this.#decoder.pending > MAX_AUTH_FRAME) {
      return this.fail(`a frame of more than ${MAX_AUTH_FRAME} bytes before authentication`);
    }
    if (this.state === "running" || this.state === "authenticating") return this.#run(frames, 0);
    for (const frame of frames) this.#queue(own(frame));
    // A backend that pipelines faster than it is answered is read no further for now; the socket is
    // read again once the backlog is empty (see `#keep`), never merely because output drained.
    if (this.#backlog.length - this.#head > BACKLOG_HIGH_WATER || this.#backlogBytes > BACKLOG_HIGH_WATER_BYTES) {
      this.#socket.pause();
    }
  }

  #queue(frame: Frame): void {
    this.#backlog.push(frame);
    if (frame.kind === "payload") this.#backlogBytes += frame.bytes.length;
  }

  /** The kernel took more output: a connection paused for it carries on with what waits. */
  drained(): void {
    if (!this.#out.flush(this.#socket)) return;
    if (this.state === "paused-for-output") return this.#resume();
    // Awaiting the store with a full backlog, the socket stays paused until that backlog is answered.
    if (this.state === "running" || this.state === "authenticating") this.#socket.resume();
    this.settle();
  }

  /** Refuses the connection: says why, then closes once that is written. */
  refuse(reply: string): void {
    this.#out.write(this.#socket, encodeFrame(reply));
    this.#dropPending();
    this.#close(Date.now(), true);
    this.settle();
  }

  /**
   * Closes for cause (a timeout, eviction): answers nothing more, says why, and closes. Logged at info,
   * or debug when `quiet`: whoever floods the port with connections must not flood the log as well.
   */
  fail(reason: string, quiet = false): void {
    if (this.state === "closing") return;
    this.#ctx.log[quiet ? "debug" : "info"](`control connection from ${this.remoteAddress}: ${reason}`, { addr: this.remoteAddress });
    this.refuse(errorReply(`${reason}; closing`));
  }

  /** The periodic check: timeouts, and closings that are due. */
  tick(now: number, authTimeoutMs: number, frameTimeoutMs: number): void {
    if (this.state === "closing") {
      if (this.#forceAt !== 0 && now >= this.#forceAt) return void this.#socket.terminate();
      return this.settle();
    }
    if (this.state === "authenticating" && now - this.openedAt >= authTimeoutMs) {
      return this.fail(`not authenticated within ${authTimeoutMs / 1000} s`);
    }
    // Only while the socket is read: a connection paused by the server is not the peer's delay.
    const reading = this.state === "running" || this.state === "authenticating";
    if (reading && this.frameSince !== 0 && now - this.frameSince >= frameTimeoutMs) {
      return this.fail(`frame incomplete after ${frameTimeoutMs / 1000} s`);
    }
    if (this.draining) this.settle();
  }

  /** Ends the connection when nothing is in progress or unsent and it is closing (or quiet while draining). */
  settle(): void {
    if (this.state === "awaiting-store" || this.state === "paused-for-output" || !this.#out.empty) return;
    if (this.#nextSeq !== this.#sentSeq) return;
    if (this.state === "closing" ? this.#closeAt === 0 || Date.now() >= this.#closeAt : this.draining && Date.now() - this.#lastData >= QUIET_MS) {
      this.#socket.end();
    }
  }

  /**
   * The socket closed: nothing more runs on it — not the frames waiting, not what would follow a
   * reply still due from the backend store — and it receives no more events.
   */
  closed(): void {
    this.#gone = true;
    this.#close(0, false);
    this.#backlog = [];
    this.#head = 0;
    this.#backlogBytes = 0;
  }

  /**
   * Answers `frames` from index `from`, gathering synchronous replies into one write. It carries on
   * past an asynchronous command issued in order (its reply, and every later one, waits in a slot),
   * stops at any other (a barrier: the rest waits for its reply), and stops before a command once the
   * unsent output would pass OUT_HIGH_WATER (the rest waits for the peer to read) or MAX_IN_FLIGHT
   * replies are pending, so replies keep the order of the requests and memory stays bounded.
   */
  #run(frames: Frame[], from: number): void {
    const replies: string[] = [];
    this.#batch = replies;
    this.#batchBytes = 0;
    let i = from;
    while (i < frames.length && (this.state === "running" || this.state === "authenticating")) {
      if (this.#out.bytes + this.#batchBytes > OUT_HIGH_WATER) {
        this.state = "paused-for-output";
        break;
      }
      if (this.#nextSeq - this.#sentSeq >= MAX_IN_FLIGHT || this.#slotBytes > OUT_HIGH_WATER) {
        this.state = "awaiting-store";
        break;
      }
      const reply = this.#answer(frames[i++]!);
      if (reply instanceof Promise) {
        const seq = this.#pend(reply);
        if (isInOrder(reply)) continue;
        this.#awaitBarrier(seq);
        break;
      }
      if (reply === NO_REPLY_YET) continue;
      if (this.#nextSeq === this.#sentSeq) {
        this.#add(reply);
        if (this.#greeting !== undefined) this.#add(this.#beginListening());
        continue;
      }
      // Behind pending replies: it waits its turn. A [listen] then holds what follows until listening
      // has begun, so events raised by later commands are not missed.
      const seq = this.#known(reply);
      if (this.#greeting !== undefined) {
        this.#greetingSeq = seq;
        this.#awaitBarrier(seq);
      }
    }
    this.#keep(frames, i);
    this.#batch = undefined;
    this.#send(replies);
    if (this.state === "paused-for-output") this.#pauseForOutput();
    this.settle();
  }

  #add(reply: string): void {
    this.#batch!.push(reply);
    this.#batchBytes += reply.length;
  }

  // What `#run` did not answer waits in the backlog (read by index, never re-sliced). Frames of a read
  // are views into its buffer: those that wait get bytes of their own.
  #keep(frames: Frame[], next: number): void {
    const waiting = this.state === "awaiting-store" || this.state === "paused-for-output";
    if (frames === this.#backlog) {
      this.#head = next;
      if (waiting && next < frames.length) return;
      this.#backlog = [];
      this.#head = 0;
      this.#backlogBytes = 0;
      if (!waiting) this.#socket.resume();
      return;
    }
    if (waiting && next < frames.length) {
      this.#backlog = [];
      this.#head = 0;
      this.#backlogBytes = 0;
      for (let i = next; i < frames.length; i++) this.#queue(own(frames[i]!));
    }
  }

  // The peer reads again when the kernel drains; if everything was taken already, carry on once
  // other connections have had their turn.
  #pauseForOutput(): void {
    if (!this.#out.empty) return void this.#socket.pause();
    setImmediate(() => this.#resume());
  }

  #resume(): void {
    if (this.state !== "paused-for-output") return;
    this.state = "running";
    if (this.frameSince !== 0) this.frameSince = Date.now();
    this.#socket.resume();
    this.#run(this.#backlog, this.#head);
  }

  /** Gives an asynchronous reply its number, in frame order; it is sent when it and all before it are known. */
  #pend(reply: Promise<string>): number {
    const seq = this.#nextSeq++;
    this.#unanswered++;
    this.#slots ??= new Array<string | undefined>(MAX_IN_FLIGHT);
    reply.then(
      (text) => this.#answered(seq, text),
      (error: unknown) => this.#answered(seq, this.#failureReply(error)),
    );
    return seq;
  }

  /** Later frames wait until reply `seq` is sent (a connection closing by then runs none anyway). */
  #awaitBarrier(seq: number): void {
    this.#barrierSeq = seq;
    if (this.state !== "closing") this.state = "awaiting-store";
  }

  /** A synchronous reply behind pending ones: numbered and known at once. */
  #known(reply: string): number {
    const seq = this.#nextSeq++;
    this.#slots![seq & SLOT_MASK] = reply;
    this.#slotBytes += reply.length;
    return seq;
  }

  #failureReply(error: unknown): string {
    if (error instanceof BackendUnavailable) return errorReply("backend unavailable");
    // Already logged by the state; the reply names the file and the cause.
    if (error instanceof StateWriteFailed) return errorReply(error.message);
    this.#ctx.log.error("command failed:", error);
    return errorReply("internal error");
  }

  // Replies that come back together (one read of the Redis link) go out in one write. While other
  // replies are still due, not from a microtask: Bun's RedisClient runs the microtasks after each reply
  // it resolves, so that flushed one reply per write (a system call each, a fifth of a sending node's
  // CPU in a pipelined burst). An immediate runs once the whole read is resolved, in the same turn of
  // the event loop. The reply that leaves none due goes at once: a lone command waits for nothing.
  #answered(seq: number, reply: string): void {
    this.#unanswered--;
    if (this.#gone || seq < this.#sentSeq) return;
    // An asynchronous [listen] asked for events when its reply came: they begin right after it.
    if (seq === this.#barrierSeq && this.#greeting !== undefined) this.#greetingSeq = seq;
    this.#slots![seq & SLOT_MASK] = reply;
    this.#slotBytes += reply.length;
    if (this.#unanswered === 0) {
      if (this.#flushNow) return;
      this.#flushNow = true;
      queueMicrotask(() => {
        this.#flushNow = false;
        this.#flush();
      });
      return;
    }
    if (this.#flushAfterRead) return;
    this.#flushAfterRead = true;
    setImmediate(() => {
      this.#flushAfterRead = false;
      this.#flush();
    });
  }

  /** Sends the known replies at the head of the order, then carries on with what waited for them. */
  #flush(): void {
    if (this.#gone) return;
    const slots = this.#slots!;
    const replies: string[] = [];
    while (this.#sentSeq < this.#nextSeq) {
      const slot = this.#sentSeq & SLOT_MASK;
      const reply = slots[slot];
      if (reply === undefined) break;
      slots[slot] = undefined;
      this.#slotBytes -= reply.length;
      replies.push(reply);
      if (this.#sentSeq === this.#greetingSeq) {
        this.#greetingSeq = -1;
        replies.push(this.#beginListening());
      }
      this.#sentSeq++;
    }
    this.#send(replies);
    if (this.state === "awaiting-store" && this.#mayRunAgain()) {
      this.state = "running";
      this.#run(this.#backlog, this.#head);
    }
    this.settle();
  }

  /** Whether frames that waited may run: the barrier is answered and the pending replies are few again. */
  #mayRunAgain(): boolean {
    return this.#barrierSeq < this.#sentSeq && this.#nextSeq - this.#sentSeq <= IN_FLIGHT_LOW_WATER && this.#slotBytes <= OUT_HIGH_WATER;
  }

  /** A connection refused: the replies still due are never sent. */
  #dropPending(): void {
    if (this.#slots) this.#slots.fill(undefined);
    this.#sentSeq = this.#nextSeq;
    this.#slotBytes = 0;
    this.#greetingSeq = -1;
  }

  #answer(frame: Frame): Maybe<string> | typeof NO_REPLY_YET {
    if (frame.kind !== "payload") {
      this.#close(0, false);
      if (frame.kind === "goodbye") return okReply(Reply.goodbye);
      return errorReply(`bad frame header ${JSON.stringify(frame.header)}: expected 5 digits; closing`);
    }
    let text: string;
    try {
      text = utf8.decode(frame.bytes);
    } catch {
      return errorReply("payload is not valid UTF-8");
    }
    if (this.state === "running") return this.#ctx.execute(text, this.#session);
    return this.#authenticate(text);
  }

  // With a secret set, nothing but [auth] runs until it succeeds, and any failure ends the connection:
  // a wrong secret is answered only after AUTH_FAILURE_DELAY_MS, during which nothing else is, so one
  // connection learns at most one guess a second. (Many connections still guess in parallel: the secret's
  // length is the defence; the warn log shows the attempts.)
  #authenticate(text: string): string | typeof NO_REPLY_YET {
    if (!isAuthCommand(text)) {
      this.#close(0, false);
      return AUTH_REQUIRED;
    }
    const reply = this.#ctx.execute(text, this.#session) as string;
    if (reply !== AUTHENTICATED) {
      this.#ctx.authFailed(this.remoteAddress);
      this.#close(Infinity, true);
      this.#forceAt = Date.now() + AUTH_FAILURE_DELAY_MS + CLOSE_GRACE_MS;
      const answer = setTimeout(() => {
        if (this.#gone) return;
        this.#closeAt = 0;
        this.#send([reply]);
        this.settle();
      }, AUTH_FAILURE_DELAY_MS);
      answer.unref();
      return NO_REPLY_YET;
    }
    if (!this.#ctx.admit(this)) {
      this.#close(0, true);
      return TOO_MANY_TEXT;
    }
    this.state = "running";
    return reply;
  }

  #close(at: number, forced: boolean): void {
    if (this.state !== "closing") this.#ctx.closing(this);
    this.state = "closing";
    this.#closeAt = at;
    if (forced) this.#forceAt = Math.max(at, Date.now()) + CLOSE_GRACE_MS;
    this.#stopListening();
  }

  #send(replies: string[]): void {
    if (replies.length > 0) this.#out.write(this.#socket, encodeFrames(replies));
  }

  // Not yet: an event raised before the reply to [listen] is out would come before it.
  #listen(first: string): void {
    if (this.state !== "closing") this.#greeting = first;
  }

  /** Right after the reply to [listen]: events from now on, and the first one to send. */
  #beginListening(): string {
    const first = this.#greeting!;
    this.#greeting = undefined;
    this.#unlisten ??= this.#ctx.events.add((event) => this.#event(event));
    return first;
  }

  #event(event: string): void {
    if (this.#batch) return this.#add(event);
    this.#send([event]);
    if (this.#out.held <= this.#ctx.listenerBuffer) return;
    const { log, metrics } = this.#ctx;
    log.warn(`listener ${this.remoteAddress} is not reading (${this.#out.held} bytes of events held); disconnecting it`, { addr: this.remoteAddress });
    metrics.listenersDisconnected++;
    this.#stopListening();
    this.#socket.terminate();
  }

  #stopListening(): void {
    this.#unlisten?.();
    this.#unlisten = undefined;
  }
}

function own(frame: Frame): Frame {
  return frame.kind === "payload" ? { kind: "payload", bytes: frame.bytes.slice() } : frame;
}
