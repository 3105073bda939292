// The cluster bus codec (src/cluster/bus.ts): pure, so tested on values. Another node's message is
// never trusted blindly: anything malformed decodes to undefined.

import { describe, expect, test } from "bun:test";
import { busStamp, decodeBus, encodeBus, encodeBusHead } from "../src/cluster/bus.ts";

describe("cluster bus codec", () => {
  test("a numbered message completed by its offset decodes to what was sent, send stamp included", () => {
    const t = busStamp();
    const text = `${encodeBusHead({ k: "u", u: 1796400000000123, m: 'a "quoted"\nline', t })}42}`;
    expect(decodeBus(text)).toEqual({ k: "u", u: 1796400000000123, m: 'a "quoted"\nline', t, o: 42 });
    expect(decodeBus(`${encodeBusHead({ k: "c", c: 7, m: "hi", t })}1}`)).toEqual({ k: "c", c: 7, m: "hi", t, o: 1 });
  });

  test("a message without a send stamp (an older node) is accepted; a stamp that is not a number is not", () => {
    expect(decodeBus(encodeBus({ k: "c", c: 7, m: "hi", o: 3 }))).toEqual({ k: "c", c: 7, m: "hi", o: 3 });
    expect(decodeBus('{"k":"c","c":7,"m":"hi","t":"soon","o":3}')).toBeUndefined();
    expect(decodeBus('{"k":"u","u":7,"m":"hi","t":null,"o":3}')).toBeUndefined();
  });

  test("a session close as the claim script writes it (session-limit.ts) decodes; a malformed one does not", () => {
    expect(decodeBus('{"k":"q","u":1796400000000123,"s":7}')).toEqual({ k: "q", u: 1796400000000123, s: 7 });
    expect(decodeBus('{"k":"q","u":7,"s":"7"}')).toBeUndefined();
    expect(decodeBus('{"k":"q","u":7}')).toBeUndefined();
  });

  test("the stamp is the wall clock in milliseconds", () => {
    expect(Math.abs(busStamp() - Date.now())).toBeLessThan(1_000);
  });
});
