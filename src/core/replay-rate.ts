/**
 * How much replay one user's logins may send: a token bucket of bytes per user. A replay writes up to
 * the replay budget (and what the kernel takes on top) to a socket that may never read it, so a token
 * that logs in again and again, resuming from an old position on streams it never reads, would keep the
 * server writing for nobody (an SSE replay costs a few times a WebSocket one to frame). Each replayed
 * message is charged; a resume login whose user has spent more than it refilled is refused with 1013
 * (try again later): the page's reconnect backs off and resumes. A reading page's replay is never cut
 * short: it is charged as it goes, and only the user's next resume waits.
 */
export class ReplayRate {
  readonly #buckets = new Map<number, { bytes: number; at: number }>();
  readonly #burst: number;
  readonly #perSecond: number;
  /** The size at which the next sweep runs: twice what the last one left, so sweeps cost O(1) a call. */
  #sweepAt = SWEEP_AT;

  constructor(burst = REPLAY_BURST_BYTES, perSecond = REPLAY_BYTES_PER_SECOND) {
    this.#burst = burst;
    this.#perSecond = perSecond;
  }

  /** Whether the user may start a replay at `now` (ms): not while it has spent more than it refilled. */
  allows(user: number, now: number): boolean {
    const bucket = this.#buckets.get(user);
    if (!bucket) return true;
    bucket.bytes = this.#refilled(bucket, now);
    bucket.at = now;
    return bucket.bytes > 0;
  }

  /** A replay of the user sent `bytes`. */
  charge(user: number, bytes: number): void {
    const bucket = this.#buckets.get(user);
    if (bucket) bucket.bytes -= bytes;
    else {
      this.#buckets.set(user, { bytes: this.#burst - bytes, at: Date.now() });
      if (this.#buckets.size > this.#sweepAt) this.#sweep(Date.now());
    }
  }

  /** Users tracked now (bounded: the sweep drops full buckets). */
  get size(): number {
    return this.#buckets.size;
  }

  #refilled(bucket: { bytes: number; at: number }, now: number): number {
    return Math.min(this.#burst, bucket.bytes + ((now - bucket.at) / 1000) * this.#perSecond);
  }

  /** Forgets the users whose bucket has refilled: they are as new. */
  #sweep(now: number): void {
    for (const [user, bucket] of this.#buckets) if (this.#refilled(bucket, now) >= this.#burst) this.#buckets.delete(user);
    this.#sweepAt = Math.max(SWEEP_AT, 2 * this.#buckets.size);
  }
}

/** Replay a user may be sent at once: several tabs resuming a full window after one network blink. */
export const REPLAY_BURST_BYTES = 16 * 1024 * 1024;
/** And how fast that refills. */
export const REPLAY_BYTES_PER_SECOND = 8 * 1024 * 1024;
/** Buckets kept before the full ones are swept out. */
const SWEEP_AT = 10_000;
