// SessionTable: a user's browsers, oldest first, with one-browser users in the plain table only.

import { describe, expect, test } from "bun:test";
import { SessionTable } from "../src/transport/session-table.ts";

describe("SessionTable", () => {
  test("keeps each user's browsers oldest first; removing the oldest promotes the next", () => {
    const table = new SessionTable<string>();
    table.add(7, "a");
    expect(table.several).toBe(false);
    table.add(7, "b");
    table.add(7, "c");
    table.add(9, "x");
    expect(table.several).toBe(true);
    expect([table.size, table.browsers, table.count(7), table.count(9), table.count(8)]).toEqual([2, 4, 3, 1, 0]);
    expect(table.all(7)).toEqual(["a", "b", "c"]);
    expect(table.remove(7, "a")).toBe(true);
    expect(table.first(7)).toBe("b");
    expect(table.remove(7, "c")).toBe(true);
    expect(table.all(7)).toEqual(["b"]);
    expect(table.more(7)).toBeUndefined();
    expect(table.several).toBe(false);
    expect(table.remove(7, "c")).toBe(false);
    expect(table.browsers).toBe(2);
  });

  test("removeAll forgets every browser of the user; entries and crowded see every browser", () => {
    const table = new SessionTable<string>();
    for (const b of ["a", "b", "c"]) table.add(1, b);
    table.add(2, "z");
    expect([...table.entries()].sort()).toEqual([[1, "a"], [1, "b"], [1, "c"], [2, "z"]]);
    expect([...table.crowded()]).toEqual([["a", "b", "c"]]);
    expect(table.removeAll(1)).toEqual(["a", "b", "c"]);
    expect([table.size, table.browsers, table.has(1), table.several]).toEqual([1, 1, false, false]);
    expect([...table.users()]).toEqual([2]);
  });

  test("thousands of browsers come and go and leave nothing behind", () => {
    const table = new SessionTable<number>();
    for (let i = 0; i < 30_000; i++) {
      const user = i % 100;
      table.add(user, i);
      if (table.count(user) > 3) table.remove(user, table.first(user)!);
    }
    expect(table.browsers).toBe(300);
    for (let user = 0; user < 100; user++) table.removeAll(user);
    expect([table.size, table.browsers, table.several]).toEqual([0, 0, false]);
  });
});
