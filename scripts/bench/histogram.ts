// A latency histogram with ≈1.6% resolution and constant memory, mergeable across worker processes.

const LINEAR = 128; // values below this (µs) get one bucket each
const SUB = 64; // buckets per power of two above it
const MAX_POWER = 31; // values are clamped below 2^31 µs (35 minutes)
const SIZE = LINEAR + (MAX_POWER - 7) * SUB;

export class Histogram {
  readonly counts: Float64Array;
  max = 0;
  total = 0;

  constructor(counts?: ArrayLike<number>) {
    this.counts = new Float64Array(SIZE);
    if (counts) this.counts.set(counts);
    if (counts) for (let i = 0; i < SIZE; i++) this.total += this.counts[i]!;
  }

  /** Records `count` samples of `us` microseconds (negative clock skew counts as 0). */
  record(us: number, count = 1): void {
    const v = us <= 0 ? 0 : Math.min(Math.floor(us), 2 ** MAX_POWER - 1);
    this.counts[index(v)]! += count;
    this.total += count;
    if (v > this.max) this.max = v;
  }

  merge(other: { counts: ArrayLike<number>; max: number }): void {
    for (let i = 0; i < SIZE; i++) {
      const c = other.counts[i]!;
      this.counts[i]! += c;
      this.total += c;
    }
    if (other.max > this.max) this.max = other.max;
  }

  /** The value (µs) below which a share `q` (0..1) of the samples lie; NaN when empty. */
  quantile(q: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < SIZE; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(upper(i), this.max);
    }
    return this.max;
  }

  toJSON(): { counts: number[]; max: number } {
    return { counts: Array.from(this.counts), max: this.max };
  }

  reset(): void {
    this.counts.fill(0);
    this.max = 0;
    this.total = 0;
  }
}

function index(v: number): number {
  if (v < LINEAR) return v;
  const power = 31 - Math.clz32(v); // ≥ 7
  return LINEAR + (power - 7) * SUB + ((v >>> (power - 6)) & (SUB - 1));
}

// The largest value that falls in bucket i.
function upper(i: number): number {
  if (i < LINEAR) return i;
  const power = 7 + Math.floor((i - LINEAR) / SUB);
  const sub = (i - LINEAR) % SUB;
  return 2 ** power + (sub + 1) * 2 ** (power - 6) - 1;
}
