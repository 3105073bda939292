// Sizes for a full run (about 10–15 minutes), a quick one, and the seconds-long smoke run of CI.

import type { BenchOptions } from "./run.ts";

export type Preset = Omit<BenchOptions, "targets" | "log" | "pin" | "profileDir">;

/** The sizes: fan-out to 1,000, 5,000 and 10,000, seven alternating rounds (≈ 7 minutes). */
export function full(): Preset {
  return {
    sizes: [1000, 5000, 10000],
    rounds: 7,
    workers: 4,
    connections: 19000,
    deliveries: 6_000_000,
    window: 200_000,
    rate: 100,
    rateSeconds: 3,
    whisperUsers: 1000,
    whispers: 300_000,
    stores: 2_000_000,
    serial: 10_000,
    concurrency: 64,
    redis: true,
  };
}

/** Three rounds and shorter phases. */
export function quick(): Preset {
  return { ...full(), rounds: 3, deliveries: 2_000_000, rateSeconds: 2, whispers: 150_000, stores: 1_000_000, serial: 4_000 };
}

/** Tiny sizes, one round: proves the benchmark works, measures nothing. */
export function smoke(): Preset {
  return {
    sizes: [20],
    rounds: 1,
    workers: 2,
    connections: 40,
    deliveries: 2_000,
    window: 400,
    rate: 100,
    rateSeconds: 0.2,
    whisperUsers: 20,
    whispers: 500,
    stores: 2_000,
    serial: 50,
    concurrency: 8,
    redis: false,
  };
}
