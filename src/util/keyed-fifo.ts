interface Item<K, V> {
  key: K;
  value: V;
  bytes: number;
  /** When it was pushed (ms), for callers that expire items by age. */
  at: number;
  live: boolean;
}

/**
 * A queue per key, bounded per key by count and across all keys by bytes. Past the byte budget the
 * oldest items overall go first, so one busy key cannot exhaust memory and no key's order is broken.
 * Used for held messages and for replay windows.
 */
export class KeyedFifo<K, V> {
  #byKey = new Map<K, Item<K, V>[]>();
  /** Every item in arrival order; removed ones stay until compaction. */
  #all: Item<K, V>[] = [];
  #head = 0;
  #dead = 0;
  #count = 0;
  #bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get count(): number {
    return this.#count;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Appends; returns how many items (of this key or others) were dropped to stay within bounds. */
  push(key: K, value: V, bytes: number, perKey: number, at = 0): number {
    const item: Item<K, V> = { key, value, bytes, at, live: true };
    let queue = this.#byKey.get(key);
    if (!queue) this.#byKey.set(key, (queue = []));
    queue.push(item);
    this.#all.push(item);
    this.#count++;
    this.#bytes += bytes;
    let dropped = 0;
    while (queue.length > perKey) {
      this.shift(key);
      dropped++;
    }
    while (this.#bytes > this.maxBytes) {
      const oldest = this.#all[this.#head++]!;
      // The oldest live item overall is also the oldest of its own key's queue.
      if (oldest.live) {
        this.shift(oldest.key);
        dropped++;
      }
      this.#dead--;
    }
    this.#compact();
    return dropped;
  }

  /** The key's values, oldest first. */
  peek(key: K): readonly Item<K, V>[] {
    return this.#byKey.get(key) ?? [];
  }

  /** Removes the key's oldest value. */
  shift(key: K): void {
    const queue = this.#byKey.get(key);
    const item = queue?.shift();
    if (!item) return;
    if (queue!.length === 0) this.#byKey.delete(key);
    item.live = false;
    this.#dead++;
    this.#count--;
    this.#bytes -= item.bytes;
  }

  /** Removes and returns the key's values, oldest first. */
  take(key: K): V[] {
    const queue = this.#byKey.get(key);
    if (!queue) return [];
    this.#byKey.delete(key);
    for (const item of queue) {
      item.live = false;
      this.#dead++;
      this.#count--;
      this.#bytes -= item.bytes;
    }
    this.#compact();
    return queue.map((item) => item.value);
  }

  // Removed items leave the arrival queue in bulk, so it never outgrows twice the live ones (plus a constant).
  #compact(): void {
    if (this.#dead < 1024 || this.#dead < this.#count) return;
    this.#all = this.#all.slice(this.#head).filter((item) => item.live);
    this.#head = 0;
    this.#dead = 0;
  }
}
