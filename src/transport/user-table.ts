// A Map from user ID to one value, in a fifth of a Map's memory.
//
// JavaScriptCore's Map costs ≈ 180 bytes of heap per entry (≈ 250 bytes of RSS), more than anything
// else webtalk keeps per logged-in browser: with 19,000 browsers the sessions map alone was ≈ 250 B
// of the ≈ 2.3 KB of RSS per browser. This table keeps IDs in a Float64Array and values in a plain
// array, open addressing with linear probing, load factor ≤ ½: 32–64 bytes per entry.

const EMPTY = -1;
const MIN_CAPACITY = 64;

/**
 * The subset of `Map<number, T>` the transports use. Keys are user IDs: integers in [0, 2^53).
 * Iteration order is unspecified (not insertion order).
 */
export class UserTable<T> {
  #keys = new Float64Array(MIN_CAPACITY).fill(EMPTY);
  #values: (T | undefined)[] = new Array<T | undefined>(MIN_CAPACITY).fill(undefined);
  #shift = 32 - Math.log2(MIN_CAPACITY);
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(id: number): T | undefined {
    const i = this.#find(id);
    return i < 0 ? undefined : this.#values[i];
  }

  has(id: number): boolean {
    return this.#find(id) >= 0;
  }

  set(id: number, value: T): this {
    const keys = this.#keys;
    const mask = keys.length - 1;
    let i = this.#home(id);
    while (keys[i] !== EMPTY && keys[i] !== id) i = (i + 1) & mask;
    if (keys[i] === EMPTY) {
      keys[i] = id;
      this.#size++;
    }
    this.#values[i] = value;
    if (this.#size * 2 > keys.length) this.#resize(keys.length * 2);
    return this;
  }

  delete(id: number): boolean {
    let hole = this.#find(id);
    if (hole < 0) return false;
    const keys = this.#keys;
    const values = this.#values;
    const mask = keys.length - 1;
    // Backward-shift deletion: later entries of the same probe run move up, so no tombstones are needed.
    for (let j = (hole + 1) & mask; keys[j] !== EMPTY; j = (j + 1) & mask) {
      const home = this.#home(keys[j]!);
      if (cyclicallyWithin(home, hole, j)) continue;
      keys[hole] = keys[j]!;
      values[hole] = values[j];
      hole = j;
    }
    keys[hole] = EMPTY;
    values[hole] = undefined;
    this.#size--;
    // Shrinks after a mass disconnect, so the memory comes back.
    if (keys.length > MIN_CAPACITY && this.#size * 8 < keys.length) this.#resize(keys.length / 2);
    return true;
  }

  clear(): void {
    this.#keys = new Float64Array(MIN_CAPACITY).fill(EMPTY);
    this.#values = new Array<T | undefined>(MIN_CAPACITY).fill(undefined);
    this.#shift = 32 - Math.log2(MIN_CAPACITY);
    this.#size = 0;
  }

  *entries(): IterableIterator<[number, T]> {
    // A snapshot, so that deleting during iteration (closing every browser) visits each entry once.
    const keys = this.#keys.slice();
    const values = this.#values.slice();
    for (let i = 0; i < keys.length; i++) if (keys[i] !== EMPTY) yield [keys[i]!, values[i] as T];
  }

  *keys(): IterableIterator<number> {
    for (const [id] of this.entries()) yield id;
  }

  *values(): IterableIterator<T> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): IterableIterator<[number, T]> {
    return this.entries();
  }

  #find(id: number): number {
    const keys = this.#keys;
    const mask = keys.length - 1;
    for (let i = this.#home(id); keys[i] !== EMPTY; i = (i + 1) & mask) if (keys[i] === id) return i;
    return -1;
  }

  // Fibonacci hashing of both 32-bit halves: the top bits of the product pick the slot.
  #home(id: number): number {
    const mixed = (id % 0x1_0000_0000) ^ Math.floor(id / 0x1_0000_0000);
    return Math.imul(mixed, 0x9e3779b1) >>> this.#shift;
  }

  #resize(capacity: number): void {
    const keys = this.#keys;
    const values = this.#values;
    this.#keys = new Float64Array(capacity).fill(EMPTY);
    this.#values = new Array<T | undefined>(capacity).fill(undefined);
    this.#shift = 32 - Math.log2(capacity);
    this.#size = 0;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== EMPTY) this.set(keys[i]!, values[i] as T);
  }
}

// Whether slot `home` lies in the cyclic range (hole, j]: then the entry at j may not move to hole.
function cyclicallyWithin(home: number, hole: number, j: number): boolean {
  return hole <= j ? hole < home && home <= j : hole < home || home <= j;
}
