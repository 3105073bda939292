import { CloseCode, type CloseReason } from "../protocol/codes.ts";
import { parseAt, TRUNCATED } from "../protocol/resume.ts";
import { dataLines, parseNumbered, positionId, sseComment, sseEvent, sseNotice, sseRetry } from "../protocol/sse.ts";
import type { BrowserSocket } from "./browser-socket.ts";
import type { Peer } from "./browser-sessions.ts";
import type { SseTopics } from "./sse-topics.ts";

/**
 * The longest event id, in bytes (ids are ASCII): with `ID!SALT!` (at most 256 bytes) in front it stays
 * under a v2 login's size (MAX_V2_LOGIN_BYTES), whatever the number of channels. Past it the least
 * recent sources are left out and the id says so (`+`): a resume from it tells `gap` for every channel
 * it does not name, rather than resuming them live in silence.
 */
export const MAX_ID_BYTES = 16_384 - 512;
/** Past this many unread bytes a closing stream is cut, not ended politely: its reader is not reading. */
const UNREAD_CUTOFF = 64 * 1024;
/**
 * The queue's high-water mark: 0, so `desiredSize` is minus the bytes queued (the sessions decide what is
 * too many). Bun also sizes the response's write buffer from it: a large one cost ≈ 20 KB per stream.
 */
const HIGH_WATER = 0;
/**
 * How long a stream closed with a final code may take to read its backlog and the `close` event behind
 * it before it is cut: what Bun's idle timeout gives a WebSocket that stops reading (public.ts).
 */
const FINAL_READ_MS = 60_000;
/** Reconnect delay told to the browser: a random point in this range, so a restart is not met by every browser at once. */
const RETRY_MIN_MS = 1000;
const RETRY_SPREAD_MS = 2000;

export interface SseSessionOptions {
  topics: SseTopics;
  /** Unread bytes past which the stream is cut at once (the WebSocket side's Bun hard cap). */
  hardLimit: number;
  /** Told when the stream is cut for holding more than `hardLimit` unread bytes (it then ends with 4006). */
  overflowed(session: SseSession, buffered: number): void;
  /** Told once, when the stream has ended for any reason, with the code it ended with. */
  ended(session: SseSession, code: number): void;
  /** Told each time Bun has taken everything queued and asks for more (a WebSocket's drain): a replay goes on. */
  drained?(session: SseSession): void;
}

/**
 * One browser on a Server-Sent Events stream: a BrowserSocket whose sends become events. It receives
 * the v2 texts a WebSocket v2 browser would (numbered messages, `#epoch`, `#gap`) and keeps the resume
 * position each event's id carries. Bytes queue in the response's stream until Bun writes them out.
 */
export class SseSession implements BrowserSocket<Peer> {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  readonly #subscribed = new Set<string>();
  #positions = new Map<string, number>();
  #epoch = "";
  /** Sources were left out of the id to keep it under MAX_ID_BYTES (until the next epoch). */
  #truncated = false;
  #ended = false;
  /**
   * The id up to the last source's item, while that source stays the most recent: a stream that hears
   * one channel again and again builds only its own item per event, not the whole list.
   */
  #idHead: string | undefined;
  /** Events written in this turn, enqueued as one chunk at its end: a burst costs one chunk and one encoding, not one per event. */
  #batch = "";
  #flushing = false;
  /** The close code the server gave it, if any. */
  closedWith: number | undefined;

  constructor(
    readonly data: Peer,
    private readonly options: SseSessionOptions,
  ) {
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => void (this.#controller = controller),
        // With a high-water mark of 0, Bun asks for more once it has taken all that was queued.
        pull: () => {
          if (!this.#ended) this.options.drained?.(this);
          else if (this.#finalRead) this.#finish();
        },
        // The browser went away (or the server was stopped).
        cancel: () => {
          clearTimeout(this.#finalRead);
          this.#end(1006);
        },
      },
      { highWaterMark: HIGH_WATER, size: (chunk) => chunk?.byteLength ?? 0 },
    );
    this.#write(sseRetry(RETRY_MIN_MS + Math.random() * RETRY_SPREAD_MS));
  }

  get subscriptions(): string[] {
    return [...this.#subscribed];
  }

  /**
   * The position a resume login came with (`EPOCH!src:off,...`, checked by resumeLogin): kept until the
   * epoch event, so a resumed stream's first id still carries it and a second cut before any new
   * message does not make the browser resume nothing.
   */
  resumeFrom(lastEventId: string): void {
    const bang = lastEventId.indexOf("!");
    this.#epoch = lastEventId.slice(0, bang);
    for (const item of lastEventId.slice(bang + 1).split(",")) {
      if (item === TRUNCATED) this.#truncated = true;
      const colon = item.lastIndexOf(":");
      if (colon > 0) this.#positions.set(item.slice(0, colon), Number(item.slice(colon + 1)));
    }
  }

  /** A v2 text: a numbered message, `#epoch EPOCH`, `#at SOURCE:OFFSET,…` or `#gap SOURCE`. */
  send(text: string): number {
    const message = parseNumbered(text);
    if (message) return this.deliver(message.source, message.offset, dataLines(message.text));
    if (text.startsWith("#epoch ")) {
      const epoch = text.slice("#epoch ".length);
      // A new epoch: offsets start again, old positions mean nothing (as in /webtalk.js).
      if (epoch !== this.#epoch) {
        this.#positions.clear();
        this.#truncated = false;
      }
      this.#epoch = epoch;
      this.#idHead = undefined;
      return this.#write(sseEvent("epoch", dataLines(epoch), this.#id()));
    }
    if (text.startsWith("#at ")) return this.#startAt(text.slice("#at ".length));
    if (text.startsWith("#gap ")) {
      const source = text.slice("#gap ".length);
      this.#positions.delete(source);
      this.#idHead = undefined;
      return this.#write(sseEvent("gap", dataLines(source), this.#id()));
    }
    return 0;
  }

  /** A message of `source` at `offset`, its data lines framed already (shared by every stream of a shout). */
  deliver(source: string, offset: number, data: string): number {
    if (this.#ended) return 0;
    if (this.#idHead !== undefined && this.#lastSource === source) {
      this.#positions.set(source, offset);
      return this.#write(sseEvent(undefined, data, `${this.#idHead}${source}:${offset}`));
    }
    this.#positions.delete(source);
    this.#positions.set(source, offset);
    const id = this.#fittedId();
    this.#lastSource = source;
    this.#idHead = id.slice(0, id.length - `${source}:${offset}`.length);
    return this.#write(sseEvent(undefined, data, id));
  }

  /**
   * The login's starting points: the stream's position for the sources it has heard nothing from yet,
   * carried by an `at` event's id so that a browser cut before any message still resumes them. They go
   * first in the id: least recently heard, they are the first left out of a long one.
   */
  #startAt(list: string): number {
    const positions = new Map<string, number>();
    for (const [source, offset] of parseAt(list)) if (!((this.#positions.get(source) ?? -1) >= offset)) positions.set(source, offset);
    for (const [source, offset] of this.#positions) if (!positions.has(source)) positions.set(source, offset);
    this.#positions = positions;
    this.#idHead = undefined;
    return this.#write(sseEvent("at", dataLines(list), this.#fittedId()));
  }

  /** A comment, so proxies see traffic on an idle stream. */
  ping(): void {
    this.#write(sseComment());
  }

  subscribe(topic: string): void {
    if (this.#ended || this.#subscribed.has(topic)) return;
    this.#subscribed.add(topic);
    this.options.topics.subscribe(topic, this);
  }

  isSubscribed(topic: string): boolean {
    return this.#subscribed.has(topic);
  }

  unsubscribe(topic: string): void {
    if (this.#subscribed.delete(topic)) this.options.topics.unsubscribe(topic, this);
  }

  /**
   * A final code (the same ID!SALT cannot log in again) ends the stream with a `close` event that the
   * page must answer with `EventSource.close()`, or the browser reconnects; any other code ends it with a
   * comment only, and the browser reconnects by itself and resumes.
   */
  close(code: number, reason: string): void {
    if (this.#ended) return;
    this.closedWith = code;
    const final = isFinal(code);
    this.#write(final ? sseNotice("close", `${code} ${reason}`) : sseComment(` ${code} ${reason}`));
    const behind = this.getBufferedAmount() > UNREAD_CUTOFF;
    // A stream far behind is cut and reconnects: right for a non-final code, but after a final one the
    // page would come back (a kicked user logged in again). Its close event waits behind the backlog
    // instead, FINAL_READ_MS at most; it receives nothing more meanwhile, so it holds no more than it had.
    if (behind && !final) return this.terminate();
    this.#flush();
    // Unref'd: a server stopping does not wait for it (Bun ends the response then; error() is then a no-op).
    if (behind) this.#finalRead = setTimeout(() => this.#controller.error(new Error("stream cut")), FINAL_READ_MS).unref();
    else this.#controller.close();
    this.#end(code);
  }

  terminate(): void {
    // A final close still waiting for its backlog to be read: cut now.
    if (this.#finalRead) {
      clearTimeout(this.#finalRead);
      this.#finalRead = undefined;
      this.#controller.error(new Error("stream cut"));
      return;
    }
    this.#cut(1006);
  }

  /** Bytes in the response's queue not yet taken by Bun, and this turn's events (a byte a character: close enough for a bound). */
  getBufferedAmount(): number {
    return this.#ended ? 0 : HIGH_WATER - (this.#controller.desiredSize ?? 0) + this.#batch.length;
  }

  #lastSource = "";
  /** Set while a final close waits for the browser to read its backlog (cut when it fires). */
  #finalRead: Timer | undefined;

  /** The browser has read everything, the close event included: the response ends. */
  #finish(): void {
    clearTimeout(this.#finalRead);
    this.#finalRead = undefined;
    this.#controller.close();
  }

  #id(): string {
    return positionId(this.#epoch, this.#positions, this.#truncated);
  }

  /** The id, leaving out the least recent sources while it is longer than MAX_ID_BYTES (and saying so). */
  #fittedId(): string {
    let id = this.#id();
    while (id.length > MAX_ID_BYTES && this.#positions.size > 1) {
      this.#positions.delete(this.#positions.keys().next().value!);
      this.#truncated = true;
      id = this.#id();
    }
    return id;
  }

  #write(chunk: string): number {
    if (this.#ended) return 0;
    this.#batch += chunk;
    if (!this.#flushing) {
      this.#flushing = true;
      queueMicrotask(this.#flush);
    }
    const buffered = this.getBufferedAmount();
    // Bun's WebSocket closes a socket past its hard cap rather than hold more: so does a stream.
    if (buffered > this.options.hardLimit) {
      this.options.overflowed(this, buffered);
      this.#cut(CloseCode.slowConsumer.code);
      return 0;
    }
    // Bun takes queued bytes on its next write, so a few are always queued: only a backlog counts as backpressure.
    return buffered > UNREAD_CUTOFF ? -1 : chunk.length;
  }

  readonly #flush = (): void => {
    this.#flushing = false;
    if (this.#ended || this.#batch === "") return;
    const bytes = encoder.encode(this.#batch);
    this.#batch = "";
    this.#controller.enqueue(bytes);
  };

  /** Ends the response at once: Bun drops what is queued and closes the connection. */
  #cut(code: number): void {
    if (this.#ended) return;
    this.#batch = "";
    this.#controller.error(new Error("stream cut"));
    this.#end(code);
  }

  #end(code: number): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const topic of this.#subscribed) this.options.topics.unsubscribe(topic, this);
    this.#subscribed.clear();
    // After the caller's turn, as Bun calls a WebSocket's close handler: the sessions finish what they were doing first.
    queueMicrotask(() => this.options.ended(this, code));
  }
}

const encoder = new TextEncoder();

const finalCodes = new Set<number>(Object.values(CloseCode).filter((c: CloseReason) => c.final).map((c) => c.code));

function isFinal(code: number): boolean {
  return finalCodes.has(code);
}
