interface Held {
  user: number;
  text: string;
  bytes: number;
  live: boolean;
}

/**
 * Held messages in memory: a queue per user, bounded per user by count (the caller's limit) and across
 * all users by bytes. Past the byte budget the globally oldest messages go first, so one flooded user
 * cannot make the server run out of memory, and per-user order is never broken.
 */
export class HeldMessages {
  #byUser = new Map<number, Held[]>();
  /** Every held message in arrival order; entries taken or dropped stay until compaction. */
  #all: Held[] = [];
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

  /** Holds a message; returns how many messages (this user's or others') were dropped to make room. */
  hold(user: number, text: string, perUser: number): number {
    const entry: Held = { user, text, bytes: Buffer.byteLength(text), live: true };
    let queue = this.#byUser.get(user);
    if (!queue) this.#byUser.set(user, (queue = []));
    queue.push(entry);
    this.#all.push(entry);
    this.#count++;
    this.#bytes += entry.bytes;
    let dropped = 0;
    while (queue.length > perUser) {
      this.#kill(queue.shift()!);
      dropped++;
    }
    while (this.#bytes > this.maxBytes) {
      const oldest = this.#all[this.#head++]!;
      if (!oldest.live) {
        this.#dead--;
        continue;
      }
      // The globally oldest live message is also the oldest of its user's queue.
      this.#byUser.get(oldest.user)!.shift();
      this.#kill(oldest);
      this.#dead--;
      dropped++;
    }
    this.#compact();
    return dropped;
  }

  /** Removes and returns the user's messages, oldest first. */
  take(user: number): string[] {
    const queue = this.#byUser.get(user);
    if (!queue) return [];
    this.#byUser.delete(user);
    for (const entry of queue) this.#kill(entry);
    this.#compact();
    return queue.map((entry) => entry.text);
  }

  drop(user: number): void {
    this.take(user);
  }

  #kill(entry: Held): void {
    entry.live = false;
    this.#dead++;
    this.#count--;
    this.#bytes -= entry.bytes;
  }

  // Taken and dropped entries are removed from the arrival queue in bulk, so it never outgrows twice
  // the live messages (plus a constant).
  #compact(): void {
    if (this.#dead < 1024 || this.#dead < this.#count) return;
    this.#all = this.#all.slice(this.#head).filter((entry) => entry.live);
    this.#head = 0;
    this.#dead = 0;
    if (this.#count === 0) this.#byUser.clear();
  }
}
