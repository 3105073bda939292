/**
 * Whether a source's window stamps are in order. Entries are stamped with the clock when appended, so
 * they never decrease unless the clock steps back; where they do not, the newest entry stamped at or
 * before a time is found by bisection (or one indexed row) instead of a scan. Only the newest step
 * back is kept: past it every stamp is in order, and a range reaching before it is scanned as before.
 */
export class StampOrder {
  /** The newest offset stamped earlier than the offset before it; 0 for none. */
  #disorder: number;
  #lastAt: number;

  constructor(disorder = 0, lastAt = -Infinity) {
    this.#disorder = disorder;
    this.#lastAt = lastAt;
  }

  /** Notes the stamp of the entry appended at `offset`. */
  stamped(offset: number, at: number): void {
    if (at < this.#lastAt) this.#disorder = offset;
    this.#lastAt = at;
  }

  /** Whether the stamps of the entries from `offset` on never decrease. */
  inOrderFrom(offset: number): boolean {
    return offset >= this.#disorder;
  }
}
