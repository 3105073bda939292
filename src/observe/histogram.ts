// Latency histograms in Prometheus' shape: fixed upper bounds, cumulative buckets, a sum and a count.

/** Upper bounds in seconds, from 100 µs (a memory command) to 2.5 s (an fsync on a struggling disk). */
export const LATENCY_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * One histogram. `observe` is on hot paths (every control command, every commit): a short scan and
 * two additions, no allocation. Counts are per bucket here and made cumulative only when rendered.
 */
export class Histogram {
  readonly bounds: readonly number[];
  /** One slot per bound, plus the last for values above every bound (+Inf). */
  readonly #counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[] = LATENCY_BUCKETS) {
    this.bounds = bounds;
    this.#counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]!) i++;
    this.#counts[i]!++;
    this.sum += value;
    this.count++;
  }

  /** `[le, cumulative count]` for every bound, then `+Inf` with the total. */
  cumulative(): [le: string, count: number][] {
    const out: [string, number][] = [];
    let running = 0;
    for (let i = 0; i < this.bounds.length; i++) out.push([String(this.bounds[i]), (running += this.#counts[i]!)]);
    out.push(["+Inf", this.count]);
    return out;
  }
}

/**
 * Histograms keyed by one label. Callers keep the keys to a small fixed set (command names, with
 * "unknown" for anything else); a key's histogram is made on its first observation, then reused.
 */
export class HistogramsBy {
  readonly #byKey = new Map<string, Histogram>();

  observe(key: string, value: number): void {
    let histogram = this.#byKey.get(key);
    if (!histogram) this.#byKey.set(key, (histogram = new Histogram()));
    histogram.observe(value);
  }

  entries(): IterableIterator<[string, Histogram]> {
    return this.#byKey.entries();
  }
}
