// A seeded PRNG for the fuzz test and the soak: a run prints its seed, and the same seed replays the
// same inputs (timing between connections still varies: they are real sockets).

export interface Random {
  readonly seed: number;
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, max). */
  int(max: number): number;
  /** An integer in [min, max], both included. */
  between(min: number, max: number): number;
  chance(probability: number): boolean;
  pick<T>(items: readonly T[]): T;
  bytes(length: number): Uint8Array;
  /** An independent stream, so concurrent tasks do not steal each other's numbers. */
  fork(): Random;
}

/** mulberry32: 32 bits of state, fast, and plenty for choosing inputs. */
export function createRandom(seed: number): Random {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (max: number): number => Math.floor(next() * max);
  return {
    seed,
    next,
    int,
    between: (min, max) => min + int(max - min + 1),
    chance: (probability) => next() < probability,
    pick<T>(items: readonly T[]): T {
      if (items.length === 0) throw new RangeError("pick from an empty list");
      return items[int(items.length)]!;
    },
    bytes(length) {
      const out = new Uint8Array(length);
      for (let i = 0; i < length; i++) out[i] = int(256);
      return out;
    },
    fork: () => createRandom(int(0x1_0000_0000)),
  };
}

/** The seed from `value` (an environment variable or flag) when given, else a fresh one. */
export function chooseSeed(value: string | undefined): number {
  if (value !== undefined && value !== "") {
    const seed = Number(value);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`invalid seed ${JSON.stringify(value)}`);
    return seed >>> 0;
  }
  return Math.floor(Math.random() * 0x1_0000_0000);
}
