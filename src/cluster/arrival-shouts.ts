/**
 * Shouts that reached this node while a login was in flight here. A login is visible to the cluster
 * (online, its routes recorded) before the browser is subscribed to its channels, so a backend may
 * see the member online and shout: that shout reaches the channel's subscribers here, not the browser
 * being admitted. The admitted browser is handed the shouts heard since its login began.
 *
 * One log for all logins in flight, so a shout costs one entry however many logins wait; it is kept
 * only while some login is in flight, and at most CAPACITY entries and CAPACITY_BYTES of text (a
 * login that waited past that is told it lost some: a webtalk.v2 browser is then told `#gap`).
 */

export interface HeardShout {
  c: number;
  m: string;
  o: number;
}

export interface LateShouts {
  shouts: HeardShout[];
  /** Some shouts heard since the login began were dropped to keep the log bounded. */
  lost: boolean;
}

export const CAPACITY = 8_192;
export const CAPACITY_BYTES = 4 * 1024 * 1024;

export class ArrivalShouts {
  #log: HeardShout[] = [];
  /** The absolute number of `#log[0]`. */
  #first = 0;
  /** Bytes of message text in the log. */
  #bytes = 0;
  /**
   * Per user with logins in flight: the absolute number of the first shout they may have missed, and
   * how many are in flight (tabs, --sessions); the earliest start holds until the last is decided.
   */
  readonly #from = new Map<number, { from: number; logins: number }>();
  readonly #capacity: number;
  readonly #capacityBytes: number;

  constructor(capacity = CAPACITY, capacityBytes = CAPACITY_BYTES) {
    this.#capacity = capacity;
    this.#capacityBytes = capacityBytes;
  }

  /** A login of the user began. */
  begin(user: number): void {
    const entry = this.#from.get(user);
    if (entry) entry.logins++;
    else this.#from.set(user, { from: this.#first + this.#log.length, logins: 1 });
  }

  heard(shout: HeardShout): void {
    if (this.#from.size === 0) return;
    this.#log.push(shout);
    this.#bytes += shout.m.length;
    if (this.#log.length > this.#capacity || this.#bytes > this.#capacityBytes) this.#dropOldestHalf();
  }

  /** One login of the user is admitted: the shouts heard since the user's earliest login in flight began. */
  take(user: number): LateShouts {
    const entry = this.#from.get(user);
    if (!entry) return { shouts: [], lost: false };
    const shouts = this.#log.slice(Math.max(0, entry.from - this.#first));
    const lost = entry.from < this.#first;
    this.forget(user);
    return { shouts, lost };
  }

  /** One login of the user ended (admitted, refused or abandoned). */
  forget(user: number): void {
    const entry = this.#from.get(user);
    if (!entry) return;
    if (--entry.logins > 0) return;
    this.#from.delete(user);
    this.#trim();
  }

  /** Entries held now (for tests and /metrics). */
  get size(): number {
    return this.#log.length;
  }

  /** Drops what no login in flight can still want. */
  #trim(): void {
    if (this.#from.size === 0) {
      this.#first += this.#log.length;
      this.#log = [];
      this.#bytes = 0;
      return;
    }
    let oldest = Infinity;
    for (const { from } of this.#from.values()) oldest = Math.min(oldest, from);
    const drop = oldest - this.#first;
    // Only when it frees at least half: trimming a few entries per login would copy the log each time.
    if (drop > 0 && drop * 2 >= this.#log.length) this.#drop(drop);
  }

  #dropOldestHalf(): void {
    this.#drop(Math.max(1, this.#log.length >> 1));
  }

  #drop(count: number): void {
    for (let i = 0; i < count; i++) this.#bytes -= this.#log[i]!.m.length;
    this.#log = this.#log.slice(count);
    this.#first += count;
  }
}
