/**
 * A set of IDs kept in ascending order, so a page after any ID is found by binary search and costs in
 * proportion to the page, not to the set: a channel's members in memory. IDs are handed out in
 * increasing order, so the common add (a new user joining channel 1) appends; others insert in place
 * (a memmove of the tail, fast even for a million IDs).
 */
export class SortedIds {
  #ids: number[] = [];

  get size(): number {
    return this.#ids.length;
  }

  /** Adds the ID; false when it was there already. */
  add(id: number): boolean {
    const ids = this.#ids;
    if (ids.length === 0 || id > ids[ids.length - 1]!) {
      ids.push(id);
      return true;
    }
    const at = this.#firstAbove(id - 1);
    if (ids[at] === id) return false;
    ids.splice(at, 0, id);
    return true;
  }

  /** Removes the ID; false when it was not there. */
  delete(id: number): boolean {
    const at = this.#firstAbove(id - 1);
    if (this.#ids[at] !== id) return false;
    this.#ids.splice(at, 1);
    return true;
  }

  has(id: number): boolean {
    return this.#ids[this.#firstAbove(id - 1)] === id;
  }

  /** Up to `limit` IDs greater than `after`, ascending. */
  page(after: number, limit: number): number[] {
    const from = this.#firstAbove(after);
    return this.#ids.slice(from, Number.isFinite(limit) ? from + limit : undefined);
  }

  /** Every ID, ascending (a copy). */
  all(): number[] {
    return this.#ids.slice();
  }

  /** The index of the first ID greater than `after` (the length when none is). */
  #firstAbove(after: number): number {
    const ids = this.#ids;
    let low = 0;
    let high = ids.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (ids[mid]! > after) high = mid;
      else low = mid + 1;
    }
    return low;
  }
}
