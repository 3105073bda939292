// How long a link's commands may go unanswered, kept with one timer for all of them.

interface Watch {
  /** performance.now() past which the command has failed. */
  at: number;
  reject: (error: Error) => void;
  /** Answered, or failed already. */
  done: boolean;
}

/**
 * Fails the commands of one link that are not answered within `ms`. Every command gets the same time,
 * so they expire in the order they were sent: one timer waits for the oldest unanswered one. (A timer
 * set and cleared, and a race, per command cost about 1 µs each in a pipelined burst of thousands.)
 */
export class Deadlines {
  /** Commands in send order from `#head`; those before it are done. */
  #queue: Watch[] = [];
  #head = 0;
  #timer: Timer | undefined;

  constructor(
    private readonly ms: number,
    /** The error an expired command fails with. */
    private readonly expired: () => Error,
  ) {}

  /** `reply`, or the `expired` error once it has not settled within the time. */
  watch<T>(reply: Promise<T>): Promise<T> {
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    const watch: Watch = { at: performance.now() + this.ms, reject, done: false };
    if (this.#timer === undefined) this.#arm(this.ms);
    this.#queue.push(watch);
    reply.then(
      (value) => {
        this.#settle(watch);
        resolve(value);
      },
      (error: unknown) => {
        this.#settle(watch);
        reject(error);
      },
    );
    return promise;
  }

  #settle(watch: Watch): void {
    watch.done = true;
    const queue = this.#queue;
    let head = this.#head;
    while (head < queue.length && queue[head]!.done) head++;
    if (head === queue.length) return this.#clear();
    // Now and then, so that the answered ones at the front do not pile up under a steady stream.
    if (head >= 1024 && head * 2 >= queue.length) {
      this.#queue = queue.slice(head);
      head = 0;
    }
    this.#head = head;
  }

  #expire(): void {
    this.#timer = undefined;
    const now = performance.now();
    const queue = this.#queue;
    for (; this.#head < queue.length; this.#head++) {
      const watch = queue[this.#head]!;
      if (watch.done) continue;
      if (watch.at > now) return this.#arm(watch.at - now);
      watch.done = true;
      watch.reject(this.expired());
    }
    this.#clear();
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => this.#expire(), ms);
  }

  /** Nothing is in flight: no timer keeps the process awake. */
  #clear(): void {
    this.#queue = [];
    this.#head = 0;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
