import type { Maybe } from "../state/state.ts";
import { KeyedFifo } from "../util/keyed-fifo.ts";
import { newSalt } from "./secret.ts";

export interface ReplayLimits {
  /** Messages kept per source. */
  count: number;
  /** Milliseconds a message stays replayable. */
  ageMs: number;
  /** Bytes kept across every source; past it the oldest messages overall go first. */
  bytes: number;
}

/** What a browser missed since a position: the messages, or a gap when they cannot be recovered. */
export type Since = { gap: false; entries: { offset: number; text: string }[] } | { gap: true };

/**
 * Numbers every message per source (a channel, or a user's whisper stream) and keeps a bounded window
 * of recent ones, so a browser that reconnects can be sent what it missed. The epoch changes whenever
 * the numbering starts over (a restart of an in-memory server), so old positions are never mistaken
 * for new ones. Offsets of one source increase by exactly one per append, in call order.
 */
export interface ReplayLog {
  readonly epoch: string;
  /** Appends a message to a source and returns its offset. */
  append(key: string, text: string): Maybe<number>;
  /**
   * The messages of a source after `offset`, at most `max` of them (default: all), or a gap when the
   * window no longer reaches back that far. Fewer than `max` means the page reached the newest message.
   */
  since(key: string, offset: number, max?: number): Maybe<Since>;
  /** Forgets a source (a killed channel or user). */
  drop(key: string): Maybe<void>;
}

/** The replay log of a single in-memory server: a new epoch at every start. */
export class MemoryReplay implements ReplayLog {
  readonly epoch: string;
  /** The last offset given out per source; offsets start at 1 and never repeat within an epoch. */
  #last = new Map<string, number>();
  /** The window's texts; offsets need no storing, as a window always holds consecutive ones up to the last. */
  #window: KeyedFifo<string, string>;

  constructor(
    private readonly limits: ReplayLimits,
    private readonly now: () => number = Date.now,
    epoch: string = newSalt().slice(0, 12),
  ) {
    this.epoch = epoch;
    this.#window = new KeyedFifo(limits.bytes);
  }

  /** Appends a message to a source and returns its offset. */
  append(key: string, text: string): number {
    const offset = (this.#last.get(key) ?? 0) + 1;
    this.#last.set(key, offset);
    if (this.limits.count > 0) {
      // At most two bytes a character (JSC keeps ASCII texts in one); the FIFO adds its own bookkeeping.
      this.#window.push(key, text, text.length * 2, this.limits.count, this.now());
    }
    return offset;
  }

  /** The messages of a source after `offset`, or a gap when the window no longer reaches back that far. */
  since(key: string, offset: number, max = Infinity): Since {
    const last = this.#last.get(key) ?? 0;
    if (offset > last) return { gap: true };
    if (offset === last) return { gap: false, entries: [] };
    const oldest = this.now() - this.limits.ageMs;
    while ((this.#window.peek(key)[0]?.at ?? Infinity) < oldest) this.#window.shift(key);
    const window = this.#window.peek(key);
    const first = last - window.length + 1;
    if (window.length === 0 || first > offset + 1) return { gap: true };
    const entries = [];
    const from = offset + 1 - first;
    for (let i = from; i < window.length && i - from < max; i++) entries.push({ offset: first + i, text: window[i]!.value });
    return { gap: false, entries };
  }

  /** Forgets a source (a killed channel or user). */
  drop(key: string): void {
    this.#last.delete(key);
    this.#window.take(key);
  }
}

export function userStream(user: number): string {
  return `u${user}`;
}

export function channelStream(channel: number): string {
  return `c${channel}`;
}
