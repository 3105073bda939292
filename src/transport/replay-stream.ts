import type { CatchUp, ReplaySource } from "../core/catch-up.ts";
import type { Since } from "../core/replay.ts";
import { gapNotice } from "../protocol/resume.ts";

/** What a replay needs from its browser's session. */
export interface ReplayTarget {
  /** Sends one notice (`#gap`); the stream never hands its sends to the slow-consumer watchdog. */
  send(text: string): void;
  /** Sends one replayed message of `source` (numbered as the browser's protocol frames it). */
  message(source: string, offset: number, text: string): void;
  /** Bytes queued to the browser, unread. */
  buffered(): number;
  /** The source is caught up to `offset` (0 after a gap): from now on it is live (its topic subscribed). */
  live(source: string, offset: number): void;
  /**
   * The same, when messages up to `offset` may still be on their way (read from a cluster's Redis, they
   * come on the bus after the page that held them): live from the first message after `offset`.
   */
  liveAfter(source: string, offset: number): void;
  /** The source could not be recovered: `#gap` was sent, the backend is to be told. */
  gap(source: string): void;
  /** Counts replayed messages. */
  replayed(count: number): void;
}

/**
 * Streams a v2 login's replay under the socket's backpressure, one page of the window at a time: while
 * the browser has less than `budget` bytes unread the next entries go out, otherwise the stream waits
 * for `resume()` (the socket's drain). A source's live topic is subscribed in the same turn as the page
 * that reached its newest message was sent, so nothing published meanwhile is lost or sent twice: every
 * message is appended to the window before it is published. Memory held per login is one page.
 */
export class ReplayStream {
  #sources: ReplaySource[];
  readonly #more: CatchUp["more"];
  #index = 0;
  /** The page being sent and the next entry of it; undefined when the next page must be read. */
  #page: Since | undefined;
  #next = 0;
  /** The last offset sent of the current source. */
  #offset = 0;
  #reading = false;
  #ended = false;
  /**
   * The login's first pages are only current in the turn the login is carried out; once the stream has
   * waited, or when they were read before it (CatchUp.current), a source is read afresh (a gap stays a
   * gap: the window only moves forward).
   */
  #waited = false;
  /**
   * Per source still to be made live, the highest offset published live meanwhile (and so not sent:
   * its topic is not subscribed). In a cluster a page is read on one Redis connection and messages come
   * on another, so one appended just after the read can arrive before the page does; a page that seems
   * to reach the newest message is then not the end, and the source is read on before it goes live.
   */
  readonly #heard = new Map<string, number>();
  /** Where the current source was last read again for a heard message. */
  #rereadFrom = -1;
  /** Pages are read where messages are published in the same turn (one process), not across connections. */
  readonly #settled: boolean;

  constructor(
    catchUp: CatchUp,
    private readonly target: ReplayTarget,
    private readonly budget: number,
    private readonly pageSize: number,
  ) {
    this.#sources = catchUp.sources;
    this.#more = catchUp.more;
    this.#waited = !catchUp.current;
    this.#settled = catchUp.current;
    this.#startSource();
  }

  /** Every source is live. */
  get done(): boolean {
    return this.#index >= this.#sources.length;
  }

  /** Sends what the browser has room for; call again on the socket's drain. */
  resume(): void {
    while (!this.#ended && !this.#reading && !this.done) {
      if (this.target.buffered() >= this.budget) return this.#wait();
      if (!this.#page) {
        const page = this.#more(this.#sources[this.#index]!.key, this.#offset);
        if (page instanceof Promise) {
          this.#reading = true;
          this.#waited = true;
          const source = this.#sources[this.#index];
          page.then((p) => this.#read(source, p), () => this.#read(source, { gap: true }));
          return;
        }
        this.#page = page;
        this.#next = 0;
      }
      this.#sendPage();
    }
  }

  /** Forgets the rest: the browser is gone or replaced. */
  end(): void {
    this.#ended = true;
    this.#page = undefined;
    this.#sources = [];
  }

  /** Stops replaying one source (the user left that channel); it is not made live. */
  drop(source: string): void {
    const at = this.#sources.findIndex((s, i) => i >= this.#index && s.source === source);
    if (at < 0) return;
    if (at === this.#index) {
      this.#index++;
      this.#startSource();
    } else this.#sources.splice(at, 1);
  }

  /** A message of `source` was published live while the source may still be replaying (see #heard). */
  heard(source: string, offset: number): void {
    if (offset > (this.#heard.get(source) ?? 0) && this.pending(source)) this.#heard.set(source, offset);
  }

  /** The sources still to be replayed. */
  sources(): string[] {
    return this.#sources.slice(this.#index).map((s) => s.source);
  }

  /** Whether a source is still being replayed (its topic must not be subscribed yet). */
  pending(source: string): boolean {
    for (let i = this.#index; i < this.#sources.length; i++) if (this.#sources[i]!.source === source) return true;
    return false;
  }

  #read(source: ReplaySource | undefined, page: Since): void {
    this.#reading = false;
    if (this.#ended) return;
    // The source was dropped while its page was read: the page belongs to no one.
    if (source !== this.#sources[this.#index]) return this.resume();
    this.#page = page;
    this.#next = 0;
    this.#sendPage();
    this.resume();
  }

  /**
   * Nothing is kept while waiting for the browser: the rest of a page is read again from the window.
   * A gap is kept: read again, the window would answer for a position it cannot vouch for (another
   * epoch's, or a channel a truncated resume did not name), not tell the gap.
   */
  #wait(): void {
    this.#waited = true;
    if (!this.#page?.gap) this.#page = undefined;
  }

  #startSource(): void {
    const source = this.#sources[this.#index];
    this.#page = source && (source.first.gap || !this.#waited) ? source.first : undefined;
    this.#next = 0;
    this.#offset = source?.from ?? 0;
  }

  /** Sends the current page while there is room; a page finished short of its size makes the source live. */
  #sendPage(): void {
    const page = this.#page!;
    const { source } = this.#sources[this.#index]!;
    if (page.gap) {
      this.target.send(gapNotice(source));
      this.target.gap(source);
      return this.#finishSource(source, 0);
    }
    // A position from before the membership: the gap is told once, and the replay goes on after the floor.
    if (page.floor !== undefined && page.floor > this.#offset) {
      this.target.send(gapNotice(source));
      this.target.gap(source);
      this.#offset = page.floor;
    }
    const { entries } = page;
    let sent = 0;
    while (this.#next < entries.length && this.target.buffered() < this.budget) {
      const entry = entries[this.#next++]!;
      this.target.message(source, entry.offset, entry.text);
      this.#offset = entry.offset;
      sent++;
    }
    this.target.replayed(sent);
    if (this.#next < entries.length) return this.#wait();
    if (entries.length < this.pageSize && !this.#readOn(source)) return this.#finishSource(source, this.#offset);
    this.#page = undefined;
  }

  /**
   * A short page is the newest unless a later message was heard meanwhile: then read once more. A read
   * made after the message was heard holds it (messages are appended before they are published), so a
   * second read that brings nothing new ends the source all the same: nothing can loop.
   */
  #readOn(source: string): boolean {
    if ((this.#heard.get(source) ?? 0) <= this.#offset || this.#rereadFrom === this.#offset) return false;
    this.#rereadFrom = this.#offset;
    return true;
  }

  #finishSource(source: string, offset: number): void {
    this.#heard.delete(source);
    this.#rereadFrom = -1;
    if (this.#settled) this.target.live(source, offset);
    else this.target.liveAfter(source, offset);
    this.#index++;
    this.#startSource();
  }
}
