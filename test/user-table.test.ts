// UserTable must behave as the Map it replaces, whatever the sequence of operations (fast-check).

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { UserTable } from "../src/transport/user-table.ts";

const id = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
const op = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant("set" as const), id, value: fc.integer() }), weight: 10 },
  { arbitrary: fc.record({ kind: fc.constant("delete" as const), id }), weight: 6 },
  { arbitrary: fc.record({ kind: fc.constant("clear" as const) }), weight: 1 },
);

describe("UserTable", () => {
  test("any sequence of set, delete and clear leaves it equal to a Map", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 2000 }), (ops) => {
        const table = new UserTable<number>();
        const map = new Map<number, number>();
        for (const o of ops) {
          if (o.kind === "set") {
            table.set(o.id, o.value);
            map.set(o.id, o.value);
          } else if (o.kind === "delete") {
            expect(table.delete(o.id)).toBe(map.delete(o.id));
          } else {
            table.clear();
            map.clear();
          }
          expect(table.size).toBe(map.size);
        }
        for (const [key, value] of map) {
          expect(table.has(key)).toBe(true);
          expect(table.get(key)).toBe(value);
        }
        expect(new Map(table)).toEqual(map);
        expect([...table.keys()].sort((a, b) => a - b)).toEqual([...map.keys()].sort((a, b) => a - b));
      }),
      { numRuns: 300 },
    );
  });

  test("grows to 100,000 dense IDs and shrinks back when they leave", () => {
    const table = new UserTable<string>();
    for (let i = 1; i <= 100_000; i++) table.set(i, `u${i}`);
    expect(table.size).toBe(100_000);
    expect(table.get(77_777)).toBe("u77777");
    for (let i = 1; i <= 99_990; i++) expect(table.delete(i)).toBe(true);
    expect([...table.values()].sort()).toEqual(Array.from({ length: 10 }, (_, k) => `u${99_991 + k}`).sort());
    expect(table.get(5)).toBeUndefined();
  });

  test("deleting while iterating visits every entry once", () => {
    const table = new UserTable<number>();
    for (let i = 0; i < 1000; i++) table.set(i * 7919, i);
    const seen: number[] = [];
    for (const [key, value] of table) {
      seen.push(value);
      table.delete(key);
    }
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(table.size).toBe(0);
  });
});
