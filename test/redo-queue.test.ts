// The queue of Redis Cluster steps sent again after a failure (src/state/redo-queue.ts): bounded in
// count and in time however fast items arrive while Redis keeps failing, and each item redone until
// it succeeds.

import { expect, test } from "bun:test";
import { RedoQueue } from "../src/state/redo-queue.ts";

test("a flood of items that keep failing never holds more than max, and each gives up after forMs", async () => {
  let calls = 0;
  const queue = new RedoQueue<number>(
    async () => {
      calls++;
      throw new Error("still away");
    },
    { everyMs: 10, forMs: 200, max: 1_000 },
  );
  let largest = 0;
  for (let i = 0; i < 50_000; i++) {
    queue.add(i);
    if (i % 100 === 0) await Bun.sleep(0);
    largest = Math.max(largest, queue.size);
  }
  expect(largest).toBeLessThanOrEqual(1_000);
  expect(queue.dropped).toBeGreaterThanOrEqual(49_000);
  // Redone while within forMs, then given up: the queue empties although nothing ever succeeded.
  for (let i = 0; i < 100 && queue.size > 0; i++) await Bun.sleep(20);
  expect(queue.size).toBe(0);
  expect(queue.dropped).toBe(50_000);
  expect(calls).toBeGreaterThan(1_000);
  queue.close();
});

test("an item is redone until it succeeds, once it does not again; close stops the rounds", async () => {
  const tries = new Map<string, number>();
  const queue = new RedoQueue<string>(
    async (item) => {
      tries.set(item, (tries.get(item) ?? 0) + 1);
      if (tries.get(item)! < 3) throw new Error("not yet");
    },
    { everyMs: 5, forMs: 5_000, max: 10 },
  );
  queue.add("a");
  queue.add("b");
  for (let i = 0; i < 200 && queue.size > 0; i++) await Bun.sleep(5);
  await Bun.sleep(30);
  expect(Object.fromEntries(tries)).toEqual({ a: 3, b: 3 });
  queue.add("c");
  queue.close();
  await Bun.sleep(30);
  expect(tries.has("c")).toBe(false);
  expect(queue.dropped).toBe(0);
});
