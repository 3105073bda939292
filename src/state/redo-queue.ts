// Redis Cluster steps whose outcome is unknown after a failure (a timeout, a shard away) and that
// nothing else would redo: a membership's channel step, a presence change's routes. Each is idempotent
// and versioned, so it is sent again in the background until Redis answers it. One loop per queue, a
// round every `everyMs`, each item for `forMs` at most, and at most `max` items: a backend that keeps
// sending while a shard is away cannot grow it without bound (the oldest are dropped past it).

export interface RedoOptions {
  everyMs: number;
  forMs: number;
  max: number;
}

/** Default bounds: every 0.5 s, for 90 s (past a join's 60 s step limit), 10,000 items. */
export const REDO: RedoOptions = { everyMs: 500, forMs: 90_000, max: 10_000 };

export class RedoQueue<T> {
  #items: { item: T; until: number }[] = [];
  #running = false;
  #closed = false;
  /** Items dropped past `max` or after `forMs`: their outcome stays unknown. */
  dropped = 0;

  constructor(
    private readonly redo: (item: T) => Promise<void>,
    private readonly options: RedoOptions = REDO,
  ) {}

  get size(): number {
    return this.#items.length;
  }

  add(item: T): void {
    if (this.#closed) return;
    if (this.#items.length >= this.options.max) {
      this.#items.shift();
      this.dropped++;
    }
    this.#items.push({ item, until: Date.now() + this.options.forMs });
    void this.#run();
  }

  close(): void {
    this.#closed = true;
    this.#items = [];
  }

  async #run(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      while (this.#items.length > 0 && !this.#closed) {
        await Bun.sleep(this.options.everyMs);
        const round = this.#items;
        this.#items = [];
        const now = Date.now();
        const live = round.filter((entry) => entry.until >= now);
        this.dropped += round.length - live.length;
        const done = await Promise.allSettled(live.map((entry) => this.redo(entry.item)));
        // Failed again: before anything added meanwhile, oldest first.
        const again = live.filter((_, i) => done[i]!.status === "rejected");
        if (this.#closed) return;
        this.#items = [...again, ...this.#items];
        const over = this.#items.length - this.options.max;
        if (over > 0) {
          this.#items.splice(0, over);
          this.dropped += over;
        }
      }
    } finally {
      this.#running = false;
    }
  }
}
