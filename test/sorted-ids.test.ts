// The ordered ID set behind in-memory channel membership: pages by binary search, any add/delete order.

import { expect, test } from "bun:test";
import { SortedIds } from "../src/state/sorted-ids.ts";
import { randomInt } from "node:crypto";

test("SortedIds matches a plain set, sorted, under random adds and deletes", () => {
  const ids = new SortedIds();
  const model = new Set<number>();
  for (let step = 0; step < 20_000; step++) {
    const id = randomInt(1, 2_000);
    if (randomInt(3) === 0) expect(ids.delete(id)).toBe(model.delete(id));
    else expect(ids.add(id)).toBe(!model.has(id) && model.add(id) !== undefined);
  }
  const sorted = [...model].sort((a, b) => a - b);
  expect(ids.size).toBe(model.size);
  expect(ids.all()).toEqual(sorted);
  for (const after of [0, 1, 500, 1_999, 5_000]) {
    expect(ids.page(after, 25)).toEqual(sorted.filter((id) => id > after).slice(0, 25));
  }
  expect(ids.page(0, Number.POSITIVE_INFINITY)).toEqual(sorted);
  expect(ids.has(sorted[0]!)).toBe(true);
});
