// ReplayLog.since in pages, the same rule in every store: at most `max` entries after the position,
// consecutive; fewer than `max` means the newest was reached; a window that moved past is a gap.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryReplay, type ReplayLimits, type ReplayLog } from "../src/core/replay.ts";
import { RedisReplay } from "../src/state/replay-redis.ts";
import { SqliteReplay } from "../src/state/replay-sqlite.ts";
import { openDataFile } from "../src/state/sqlite-file.ts";
import { haveRedis, link, startRedis, uniquePrefix, type TestRedis } from "./redis-server.ts";

const limits: ReplayLimits = { count: 10, ageMs: 60_000, bytes: 1 << 20 };
const dir = mkdtempSync(join(tmpdir(), "webtalk-replay-page-"));
let redis: TestRedis | undefined;
afterAll(async () => {
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const stores: [string, () => Promise<ReplayLog & { close?(): void }>][] = [
  ["memory", async () => new MemoryReplay(limits)],
  ["sqlite", async () => new SqliteReplay(openDataFile(join(dir, `${Math.random()}.db`), { sync: "normal" }), limits)],
];
if (haveRedis) {
  stores.push([
    "redis",
    async () => {
      redis ??= await startRedis();
      return RedisReplay.open(await link(redis), uniquePrefix("replay"), limits);
    },
  ]);
}

for (const [name, open] of stores) {
  describe(`ReplayLog.since in pages: ${name}`, () => {
    test("pages join up exactly; a short page is the newest; past the window is a gap, then the window", async () => {
      const log = await open();
      for (let i = 1; i <= 25; i++) await log.append("c1", `m${i}`);
      for (let i = 1; i <= 25; i++) await log.append("u7", `w${i}`);
      // The window holds 16..25 (count 10). A position before it is a gap (the floor) and then what it
      // holds, for a channel as for a whisper stream.
      const entries = [16, 17, 18, 19].map((offset) => ({ offset, text: `m${offset}` }));
      expect(await log.since("c1", 10, 4)).toEqual({ gap: false, entries, floor: 15 });
      const whispers = [16, 17, 18, 19].map((offset) => ({ offset, text: `w${offset}` }));
      expect(await log.since("u7", 10, 4)).toEqual({ gap: false, entries: whispers, floor: 15 });
      const offsets: number[] = [];
      let from = 15;
      for (;;) {
        const page = await log.since("c1", from, 4);
        if (page.gap) throw new Error("unexpected gap");
        expect(page.entries.length).toBeLessThanOrEqual(4);
        for (const entry of page.entries) expect(entry.text).toBe(`m${entry.offset}`);
        offsets.push(...page.entries.map((e) => e.offset));
        if (page.entries.length < 4) break;
        from = page.entries.at(-1)!.offset;
      }
      expect(offsets).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
      expect(await log.since("c1", 25, 4)).toEqual({ gap: false, entries: [] });
      const all = await log.since("c1", 20);
      expect(all.gap ? [] : all.entries.map((e) => e.offset)).toEqual([21, 22, 23, 24, 25]);
    });
  });
}
