// ArrivalShouts (src/cluster/arrival-shouts.ts): what a login in flight is handed, and its bounds.

import { describe, expect, test } from "bun:test";
import { ArrivalShouts } from "../src/cluster/arrival-shouts.ts";

const shout = (o: number, m = `m${o}`) => ({ c: 7, m, o });

describe("ArrivalShouts", () => {
  test("a login gets exactly the shouts heard since it began; nothing is kept with no login in flight", () => {
    const log = new ArrivalShouts();
    log.heard(shout(1));
    expect(log.size).toBe(0);
    log.begin(10);
    log.heard(shout(2));
    log.begin(11);
    log.heard(shout(3));
    expect(log.take(11)).toEqual({ shouts: [shout(3)], lost: false });
    expect(log.take(10)).toEqual({ shouts: [shout(2), shout(3)], lost: false });
    expect(log.size).toBe(0);
    expect(log.take(10)).toEqual({ shouts: [], lost: false });
  });

  test("two logins of one user: the earliest start holds until both are decided", () => {
    const log = new ArrivalShouts();
    log.begin(5);
    log.heard(shout(1));
    log.begin(5);
    log.heard(shout(2));
    expect(log.take(5).shouts).toEqual([shout(1), shout(2)]);
    log.heard(shout(3));
    expect(log.take(5).shouts).toEqual([shout(1), shout(2), shout(3)]);
    expect(log.size).toBe(0);
  });

  test("a refused or abandoned login frees what only it held", () => {
    const log = new ArrivalShouts();
    log.begin(1);
    for (let i = 0; i < 100; i++) log.heard(shout(i));
    log.begin(2);
    log.heard(shout(100));
    log.forget(1);
    expect(log.size).toBe(1);
    expect(log.take(2).shouts).toEqual([shout(100)]);
  });

  test("a login that never ends holds at most the capacity, in entries and in bytes, and is told it lost some", () => {
    const log = new ArrivalShouts(1_000, 64 * 1024);
    log.begin(1);
    for (let i = 0; i < 100_000; i++) log.heard(shout(i));
    expect(log.size).toBeLessThanOrEqual(1_000);
    for (let i = 0; i < 10_000; i++) log.heard(shout(i, "x".repeat(1024)));
    expect(log.size).toBeLessThanOrEqual(64);
    const late = log.take(1);
    expect(late.lost).toBe(true);
    expect(late.shouts.at(-1)).toEqual(shout(9_999, "x".repeat(1024)));
    expect(log.size).toBe(0);
  });
});
