// The keyed FIFO frees what it evicts: its arrival queue stays bounded by the live items however
// the items leave (byte cap, per-key count, take), and its byte count includes its own bookkeeping.

import { describe, expect, test } from "bun:test";
import { ITEM_BYTES, KEY_BYTES, KeyedFifo } from "../src/util/keyed-fifo.ts";

describe("KeyedFifo", () => {
  test("evictions by the byte cap leave the arrival queue (it used to keep every item ever pushed)", () => {
    const fifo = new KeyedFifo<number, string>(100 * (10 + ITEM_BYTES + KEY_BYTES));
    for (let i = 0; i < 100_000; i++) fifo.push(i, "0123456789", 10, 1000);
    expect(fifo.count).toBe(100);
    expect(fifo.arrivals).toBeLessThanOrEqual(2 * fifo.count + 1024);
    expect(fifo.peek(99_999).map((item) => item.value)).toEqual(["0123456789"]);
    expect(fifo.peek(0)).toEqual([]);
  });

  test("evictions by the per-key count and by take leave it too", () => {
    const fifo = new KeyedFifo<number, number>(Number.POSITIVE_INFINITY);
    for (let i = 0; i < 50_000; i++) fifo.push(i % 10, i, 1, 5);
    expect(fifo.count).toBe(50);
    expect(fifo.arrivals).toBeLessThanOrEqual(2 * fifo.count + 1024);
    expect(fifo.take(3)).toEqual([49_953, 49_963, 49_973, 49_983, 49_993]);
  });

  test("bytes count the values and the bookkeeping of items and keys, and return to zero", () => {
    const fifo = new KeyedFifo<string, string>(Number.POSITIVE_INFINITY);
    fifo.push("a", "x", 1, 10);
    fifo.push("a", "y", 1, 10);
    fifo.push("b", "z", 1, 10);
    expect(fifo.bytes).toBe(3 * (1 + ITEM_BYTES) + 2 * KEY_BYTES);
    expect(fifo.take("a")).toEqual(["x", "y"]);
    fifo.shift("b");
    expect(fifo.bytes).toBe(0);
    expect(fifo.count).toBe(0);
  });

  test("order per key is kept while the oldest items overall go first", () => {
    const fifo = new KeyedFifo<string, number>(4 * (1 + ITEM_BYTES) + 2 * KEY_BYTES);
    for (let i = 0; i < 6; i++) fifo.push(i % 2 === 0 ? "even" : "odd", i, 1, 10);
    expect(fifo.take("even")).toEqual([2, 4]);
    expect(fifo.take("odd")).toEqual([3, 5]);
  });
});
