import { KeyedFifo } from "../util/keyed-fifo.ts";

/**
 * Held messages in memory: a queue per user, bounded per user by count (the caller's limit) and across
 * all users by bytes, so one flooded user cannot make the server run out of memory.
 */
export class HeldMessages {
  #fifo: KeyedFifo<number, string>;

  constructor(maxBytes: number) {
    this.#fifo = new KeyedFifo(maxBytes);
  }

  get count(): number {
    return this.#fifo.count;
  }

  /** Holds a message; returns how many messages (this user's or others') were dropped to make room. */
  hold(user: number, text: string, perUser: number): number {
    // Two bytes a character bounds the string's memory without reading it: a held entry is
    // `${offset}!${text}`, and JSC keeps it as a rope sharing the text with the replay window until it
    // is delivered, where measuring its UTF-8 length would flatten it into a second copy.
    return this.#fifo.push(user, text, text.length * 2, perUser);
  }

  /** Removes and returns the user's messages, oldest first. */
  take(user: number): string[] {
    return this.#fifo.take(user);
  }
}
