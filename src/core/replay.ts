import { GLOBAL_CHANNEL, type Maybe } from "../state/state.ts";
import { KeyedFifo } from "../util/keyed-fifo.ts";
import { newSalt } from "./secret.ts";
import { StampOrder } from "./stamp-order.ts";

export interface ReplayLimits {
  /** Messages kept per source. */
  count: number;
  /** Milliseconds a message stays replayable. */
  ageMs: number;
  /** Bytes kept across every source; past it the oldest messages overall go first. */
  bytes: number;
}

/**
 * What a browser missed since a position: the messages, or a gap when they cannot be recovered. With
 * `floor`, the position was from before the user's membership: the browser is told of a gap, and the
 * entries follow the floor (what was sent up to it is never the user's to read).
 */
export type Since = { gap: false; entries: { offset: number; text: string }[]; floor?: number } | { gap: true };

/**
 * Numbers every message per source (a channel, or a user's whisper stream) and keeps a bounded window
 * of recent ones, so a browser that reconnects can be sent what it missed. The epoch changes whenever
 * the numbering starts over (a restart of an in-memory server), so old positions are never mistaken
 * for new ones. Offsets of one source increase by exactly one per append, in call order.
 */
export interface ReplayLog {
  readonly epoch: string;
  /** Reads answer in the turn they are asked (one process), not later from a cluster's Redis. */
  readonly immediate: boolean;
  /** Appends a message to a source and returns its offset. */
  append(key: string, text: string): Maybe<number>;
  /** The offset the source has reached: its last message's (0 before the first). */
  last(key: string): Maybe<number>;
  /**
   * The messages of a source after `offset`, at most `max` of them (default: all), or a gap when the
   * window no longer reaches back that far. Fewer than `max` means the page reached the newest message.
   * For a channel read by `member`, nothing from before its membership: not at or below its floor
   * (`joined`), and on channel 1 nothing stamped at or before the millisecond of its ID (bornMs).
   */
  since(key: string, offset: number, max?: number, member?: number): Maybe<Since>;
  /**
   * A join added `user` to a channel: its floor becomes the source's last offset, so a resume never
   * reaches back past it. Called after the membership exists, so a message numbered in between is
   * at most a gap, never replayed to a non-member.
   */
  joined(key: string, user: number): Maybe<void>;
  /** The user left the channel: its floor is no longer needed. */
  left(key: string, user: number): Maybe<void>;
  /** The user was deleted: forgets its floors. */
  forget(user: number): Maybe<void>;
  /** Forgets a source (a killed channel or user) with its floors. */
  drop(key: string): Maybe<void>;
}

/** The replay log of a single in-memory server: a new epoch at every start. */
export class MemoryReplay implements ReplayLog {
  readonly epoch: string;
  readonly immediate = true;
  /** The last offset given out per source; offsets start at 1 and never repeat within an epoch. */
  #last = new Map<string, number>();
  /** The window's texts; offsets need no storing, as a window always holds consecutive ones up to the last. */
  #window: KeyedFifo<string, string>;
  /** Per source, the floor of each member that joined after it was numbered (none: member from its start). */
  readonly #floors = new Map<string, Map<number, number>>();
  /**
   * Per user, the sources it has a floor in, so deleting the user forgets them: most users have one,
   * kept as a plain string, so a join costs no set of its own.
   */
  readonly #floorsOf = new Map<number, string | Set<string>>();
  /** Whether channel 1's stamps are in order, so its birth floors are found by bisection. */
  #globalOrder = new StampOrder();

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
      const at = this.now();
      if (key === GLOBAL_STREAM) this.#globalOrder.stamped(offset, at);
      // At most two bytes a character (JSC keeps ASCII texts in one); the FIFO adds its own bookkeeping.
      this.#window.push(key, text, text.length * 2, this.limits.count, at);
    }
    return offset;
  }

  last(key: string): number {
    return this.#last.get(key) ?? 0;
  }

  /** The messages of a source after `offset`, or a gap when the window no longer reaches back that far. */
  since(key: string, offset: number, max = Infinity, member?: number): Since {
    const last = this.#last.get(key) ?? 0;
    if (offset > last) return { gap: true };
    if (offset === last) return { gap: false, entries: [] };
    let from = member === undefined ? offset : Math.max(offset, this.#floors.get(key)?.get(member) ?? 0);
    const oldest = this.now() - this.limits.ageMs;
    while ((this.#window.peek(key)[0]?.at ?? Infinity) < oldest) this.#window.shift(key);
    const window = this.#window.peek(key);
    const first = last - window.length + 1;
    if (member !== undefined && key === GLOBAL_STREAM) from = this.#afterBirth(window, first, from, bornMs(member));
    if (from < last && (window.length === 0 || first > from + 1)) {
      // Past the window: its #gap (as a floor), then what the window still holds.
      if (window.length === 0) return { gap: true };
      from = first - 1;
    }
    const entries = [];
    const start = from + 1 - first;
    for (let i = start; i < window.length && i - start < max; i++) entries.push({ offset: first + i, text: window[i]!.value });
    return from > offset ? { gap: false, entries, floor: from } : { gap: false, entries };
  }

  /**
   * After `from`, the newest entry of channel 1's window stamped at or before `born` (or `from`). Where
   * stamps are in order that is one bisection, so a replay's pages each cost a few steps rather than a
   * scan of the rest of the window; across a backward clock step, the scan it replaces.
   */
  #afterBirth(window: readonly { at: number }[], first: number, from: number, born: number): number {
    const start = Math.max(from + 1 - first, 0);
    if (!this.#globalOrder.inOrderFrom(first + start)) {
      for (let i = start; i < window.length; i++) if (window[i]!.at <= born) from = first + i;
      return from;
    }
    const end = firstStampedAfter(window, start, born);
    return end > start ? first + end - 1 : from;
  }

  joined(key: string, user: number): void {
    const last = this.#last.get(key) ?? 0;
    // Nothing numbered yet: everything the source will number comes after the join.
    if (last === 0) return this.left(key, user);
    let floors = this.#floors.get(key);
    if (!floors) this.#floors.set(key, (floors = new Map()));
    if (floors.get(user) === undefined) this.#indexFloor(user, key);
    floors.set(user, last);
  }

  left(key: string, user: number): void {
    const floors = this.#floors.get(key);
    if (!floors?.delete(user)) return;
    if (floors.size === 0) this.#floors.delete(key);
    const keys = this.#floorsOf.get(user);
    if (typeof keys === "object") {
      keys.delete(key);
      if (keys.size === 1) this.#floorsOf.set(user, keys.values().next().value!);
    } else this.#floorsOf.delete(user);
  }

  forget(user: number): void {
    const keys = this.#floorsOf.get(user);
    for (const key of typeof keys === "string" ? [keys] : [...(keys ?? [])]) this.left(key, user);
  }

  #indexFloor(user: number, key: string): void {
    const keys = this.#floorsOf.get(user);
    if (keys === undefined) this.#floorsOf.set(user, key);
    else if (typeof keys === "string") this.#floorsOf.set(user, new Set([keys, key]));
    else keys.add(key);
  }

  /** Forgets a source (a killed channel or user). */
  drop(key: string): void {
    this.#last.delete(key);
    this.#window.take(key);
    if (key === GLOBAL_STREAM) this.#globalOrder = new StampOrder();
    for (const user of this.#floors.get(key)?.keys() ?? []) this.left(key, user);
  }
}

/** The first index from `start` on stamped after `born`, in a window whose stamps never decrease from `start`. */
function firstStampedAfter(window: readonly { at: number }[], start: number, born: number): number {
  let low = start;
  let high = window.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (window[mid]!.at <= born) low = mid + 1;
    else high = mid;
  }
  return low;
}

/**
 * The latest millisecond a user may have been created in: IDs are the creation time in microseconds
 * or above (id-clock.ts), so a channel-1 entry stamped at or before it may be older than the user —
 * and is not replayed to it. The same millisecond counts as before: a gap is safe, a leak is not.
 */
export function bornMs(user: number): number {
  return Math.floor(user / 1000);
}

export function userStream(user: number): string {
  return `u${user}`;
}

export function channelStream(channel: number): string {
  return `c${channel}`;
}

/** Channel 1's stream: every user joins it at creation, so its floor is the user's ID clock, never stored. */
export const GLOBAL_STREAM = channelStream(GLOBAL_CHANNEL);
