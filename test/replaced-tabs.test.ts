// The memory of replaced tabs (src/transport/replaced-tabs.ts) is bounded: at most CAPACITY tabs, the
// oldest forgotten first, each for TTL_MS. A flood of replaced tabs cannot grow it past that, and a
// remembered tab is owed its close only as the user it was cut as.

import { expect, test } from "bun:test";
import { CloseCode } from "../src/protocol/codes.ts";
import { ReplacedTabs, tabOf } from "../src/transport/replaced-tabs.ts";

test("a flood of 100,000 replaced tabs keeps 10,000, the newest; the oldest are no longer owed", () => {
  const tabs = new ReplacedTabs(10_000, 60_000);
  for (let i = 0; i < 100_000; i++) tabs.remember(i, `t${i}`, CloseCode.replaced, 1_000);
  expect(tabs.size).toBe(10_000);
  expect(tabs.owed(0, "t0", 1_000)).toBeUndefined();
  expect(tabs.owed(99_999, "t99999", 1_000)).toBe(CloseCode.replaced);
  expect(tabs.owed(99_998, "t99999", 1_000)).toBeUndefined();
});

test("a tab is owed its close for 60 s, then forgotten", () => {
  const tabs = new ReplacedTabs(10_000, 60_000);
  tabs.remember(7, "tab", CloseCode.sessionReplaced, 0);
  expect(tabs.owed(7, "tab", 59_999)).toBe(CloseCode.sessionReplaced);
  expect(tabs.owed(7, "tab", 60_000)).toBeUndefined();
  tabs.remember(8, "other", CloseCode.replaced, 60_001);
  expect(tabs.size).toBe(1);
});

test("only short plain tab names are taken from the URL", () => {
  expect(tabOf(new URL("ws://h/webtalk?tab=abc_1-2"))).toBe("abc_1-2");
  expect(tabOf(new URL(`ws://h/webtalk?tab=${"x".repeat(65)}`))).toBeUndefined();
  expect(tabOf(new URL("ws://h/webtalk?tab=a%20b"))).toBeUndefined();
  expect(tabOf(new URL("ws://h/webtalk"))).toBeUndefined();
});
