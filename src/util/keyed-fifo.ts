interface Item<K, V> {
  key: K;
  /** Released (undefined) as soon as the item leaves, so an evicted value is garbage at once. */
  value: V | undefined;
  bytes: number;
  /** When it was pushed (ms), for callers that expire items by age. */
  at: number;
  live: boolean;
}

/** A live item: its value is still held. */
export type Held<K, V> = Item<K, V> & { value: V };

/**
 * What one item costs besides its value's characters: the item object (~64 bytes) and its slots in the
 * arrival queue and its key's queue (8 each), measured with bun:jsc heapStats over 200,000 items; plus
 * what the value string costs beyond its characters (its header, and a rope's or substring's parts:
 * a held entry is `${offset}!${text}`, a whisper's text a substring of its command), which heap
 * statistics do not show: measured as RSS, 1,000,000 one-byte whispers held about 215 bytes each.
 */
export const ITEM_BYTES = 208;
/** What one key with items costs besides them: its Map entry and its queue's array (~105 bytes measured). */
export const KEY_BYTES = 112;

/**
 * A queue per key, bounded per key by count and across all keys by bytes. Past the byte budget the
 * oldest items overall go first, so one busy key cannot exhaust memory and no key's order is broken.
 * The bytes counted are the callers' value bytes plus each item's and key's own bookkeeping, so the
 * budget bounds the memory really held. Used for held messages and for replay windows.
 */
export class KeyedFifo<K, V> {
  #byKey = new Map<K, Item<K, V>[]>();
  /** Every item in arrival order from `#head` on; removed ones stay (without their value) until compaction. */
  #all: Item<K, V>[] = [];
  #head = 0;
  /** Removed items at or after `#head`. */
  #dead = 0;
  #count = 0;
  #bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get count(): number {
    return this.#count;
  }

  /** Bytes accounted for the items held, bookkeeping included. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Length of the arrival queue, removed items not yet compacted included (for tests: it must stay bounded). */
  get arrivals(): number {
    return this.#all.length;
  }

  /** Appends; returns how many items (of this key or others) were dropped to stay within bounds. */
  push(key: K, value: V, bytes: number, perKey: number, at = 0): number {
    let queue = this.#byKey.get(key);
    // Items of one key share its first key value: callers build a fresh key string per push.
    const item: Item<K, V> = { key: queue?.[0]?.key ?? key, value, bytes: bytes + ITEM_BYTES, at, live: true };
    if (!queue) {
      this.#byKey.set(key, (queue = []));
      this.#bytes += KEY_BYTES;
    }
    queue.push(item);
    this.#all.push(item);
    this.#count++;
    this.#bytes += item.bytes;
    let dropped = 0;
    while (queue.length > perKey) {
      this.shift(key);
      dropped++;
    }
    while (this.#bytes > this.maxBytes && this.#head < this.#all.length) {
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

  /** The key's items, oldest first. */
  peek(key: K): readonly Held<K, V>[] {
    return (this.#byKey.get(key) ?? []) as Held<K, V>[];
  }

  /** Removes the key's oldest value. */
  shift(key: K): void {
    const queue = this.#byKey.get(key);
    const item = queue?.shift();
    if (!item) return;
    if (queue!.length === 0) this.#forget(key);
    this.#release(item);
  }

  /** Removes and returns the key's values, oldest first. */
  take(key: K): V[] {
    const queue = this.#byKey.get(key);
    if (!queue) return [];
    this.#forget(key);
    const values = queue.map((item) => item.value as V);
    for (const item of queue) this.#release(item);
    this.#compact();
    return values;
  }

  #forget(key: K): void {
    this.#byKey.delete(key);
    this.#bytes -= KEY_BYTES;
  }

  #release(item: Item<K, V>): void {
    item.live = false;
    item.value = undefined;
    this.#dead++;
    this.#count--;
    this.#bytes -= item.bytes;
  }

  // Items before the head (evicted) and removed ones after it leave the arrival queue in bulk, once
  // they are as many as the live ones (and at least 1024): the queue never outgrows twice the live
  // items plus a constant, and each removed item is copied at most once (O(1) amortised per push).
  #compact(): void {
    const stale = this.#head + this.#dead;
    if (stale < 1024 || stale < this.#count) return;
    const live: Item<K, V>[] = [];
    for (let i = this.#head; i < this.#all.length; i++) if (this.#all[i]!.live) live.push(this.#all[i]!);
    this.#all = live;
    this.#head = 0;
    this.#dead = 0;
  }
}
