// Channel 1's birth floor (issue 15's replay regression): a resume never replays a channel-1 entry
// stamped at or before the millisecond of the user's ID, whichever page it falls in, now that the floor
// is found by bisection (memory, Redis) or one indexed row (SQLite) rather than a scan of the rest of
// the window on every page. Against each replay log (memory; a real SQLite file; a real redis-server):
// users born in the very millisecond of an entry, at the first and last microsecond of it, read from 0
// in pages of one and of many; and a clock that stepped back, where the stamps are out of order and
// bisection alone would replay an entry stamped before the user.

import { afterAll, beforeAll, describe, expect, setSystemTime, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GLOBAL_STREAM, MemoryReplay, type ReplayLimits, type ReplayLog, type Since } from "../src/core/replay.ts";
import type { RedisLink } from "../src/state/redis-link.ts";
import { RedisReplay } from "../src/state/replay-redis.ts";
import { SqliteReplay } from "../src/state/replay-sqlite.ts";
import { openDataFile } from "../src/state/sqlite-file.ts";
import { haveRedis, link, startRedis, uniquePrefix, type TestRedis } from "./redis-server.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-birth-floor-"));
const limits: ReplayLimits = { count: 1000, ageMs: 600_000, bytes: 1 << 24 };
let redis: TestRedis | undefined;
let redisLink: RedisLink | undefined;
beforeAll(async () => {
  if (haveRedis) {
    redis = await startRedis();
    redisLink = await link(redis);
  }
});
afterAll(async () => {
  setSystemTime();
  redisLink?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Subject {
  log: ReplayLog;
  /** Appends to channel 1 and returns the entry's stamp as the log recorded it. */
  append(text: string): Promise<number>;
  /** Appends one entry stamped `back` ms before the newest one (a clock that stepped back). */
  appendStepBack(text: string, back: number): Promise<number>;
}

let files = 0;
const subjects: [string, () => Promise<Subject>][] = [
  [
    "memory",
    async () => {
      let clock = Date.now();
      const log = new MemoryReplay(limits, () => clock);
      return {
        log,
        append: async (text) => {
          // Three entries a millisecond, then a millisecond with none: stamps repeat and skip.
          if ((await countOf(log)) % 3 === 0) clock += 2;
          log.append(GLOBAL_STREAM, text);
          return clock;
        },
        appendStepBack: async (text, back) => {
          clock -= back;
          log.append(GLOBAL_STREAM, text);
          const at = clock;
          clock += back + 2; // the clock is put right again
          return at;
        },
      };
    },
  ],
  [
    "sqlite",
    async () => {
      const db = openDataFile(join(dir, `birth-${++files}.db`), { sync: "normal" });
      const log = new SqliteReplay(db, limits);
      const newest = () => {
        log.flush();
        return db.query<{ at: number }, []>("SELECT at FROM replay WHERE source = 'c1' ORDER BY offset DESC LIMIT 1").get()!.at;
      };
      return {
        log,
        append: async (text) => {
          if ((await countOf(log)) % 3 === 0) await nextMillisecond();
          log.append(GLOBAL_STREAM, text);
          return newest();
        },
        appendStepBack: async (text, back) => {
          setSystemTime(new Date(newest() - back));
          try {
            log.append(GLOBAL_STREAM, text);
          } finally {
            setSystemTime();
          }
          return newest();
        },
      };
    },
  ],
];
if (haveRedis) {
  subjects.push([
    "redis",
    async () => {
      const prefix = uniquePrefix("birth");
      const log = await RedisReplay.open(redisLink!, prefix, limits);
      const window = `${prefix}win:${GLOBAL_STREAM}`;
      const newest = async () => Number(((await redisLink!.call("LINDEX", [window, -1])) as string).split(":")[1]);
      return {
        log,
        append: async (text) => {
          if ((await countOf(log)) % 3 === 0) await nextMillisecond();
          await log.append(GLOBAL_STREAM, text);
          return newest();
        },
        // Redis's clock cannot be stepped back from here: the entry before is re-stamped into the
        // future instead, as one appended before the step would be, and the next append is then older.
        appendStepBack: async (text, back) => {
          const tail = (await redisLink!.call("LINDEX", [window, -1])) as string;
          const [offset, at, ...rest] = tail.split(":");
          await redisLink!.call("LSET", [window, -1, `${offset}:${Number(at) + back + 50}:${rest.join(":")}`]);
          await log.append(GLOBAL_STREAM, text);
          return newest();
        },
      };
    },
  ]);
}

for (const [name, open] of subjects) {
  describe(`channel 1's birth floor (${name})`, () => {
    test("a user born in an entry's millisecond is replayed exactly the entries stamped after it, on every page", async () => {
      const s = await open();
      const stamps: number[] = [];
      for (let i = 1; i <= 12; i++) stamps.push(await s.append(`m${i}`));
      expect(new Set(stamps).size).toBeGreaterThan(2);
      for (const ms of new Set(stamps)) {
        // The first and the last user ID of that millisecond, and of the one before it.
        for (const user of [ms * 1000, ms * 1000 + 999, ms * 1000 - 1]) {
          const born = Math.floor(user / 1000);
          const expected = stamps.flatMap((at, i) => (at > born ? [i + 1] : []));
          for (const page of [1, 5, 16]) {
            const { offsets, floor } = await readAll(s.log, user, page);
            expect({ user, page, offsets }).toEqual({ user, page, offsets: expected });
            const skipped = stamps.length - expected.length;
            expect(floor).toBe(skipped > 0 ? skipped : undefined);
          }
        }
      }
    });

    test("after a clock step back, an entry stamped before the user is not replayed even past newer stamps", async () => {
      const s = await open();
      const stamps: number[] = [];
      for (let i = 1; i <= 6; i++) stamps.push(await s.append(`m${i}`));
      // A resume before the step: what it learnt of the order then must not hide the step.
      expect((await readAll(s.log, stamps[0]! * 1000 - 1, 16)).offsets).toEqual([1, 2, 3, 4, 5, 6]);
      const stepped = await s.appendStepBack("m7", 30);
      // Born after the stepped-back entry's stamp but before the entries appended ahead of the step.
      const user = stepped * 1000 + 999;
      for (const page of [1, 3, 16]) {
        const { offsets, floor } = await readAll(s.log, user, page);
        expect(offsets).toEqual([]);
        expect(floor).toBe(7);
      }
      // An entry appended after the step, stamped after the user: that one, and only it.
      await nextMillisecond();
      await Bun.sleep(2);
      await s.append("m8");
      const { offsets } = await readAll(s.log, user, 1);
      expect(offsets).toEqual([8]);
    });
  });
}

/** Reads channel 1 from offset 0 for `user` in pages of `page`, as catch-up's `more` does. */
async function readAll(log: ReplayLog, user: number, page: number): Promise<{ offsets: number[]; floor?: number }> {
  const offsets: number[] = [];
  let floor: number | undefined;
  let at = 0;
  for (let pages = 0; pages < 100; pages++) {
    const since = (await log.since(GLOBAL_STREAM, at, page, user)) as Since;
    if (since.gap) throw new Error(`a gap at ${at}`);
    if (since.floor !== undefined) {
      expect(floor).toBeUndefined(); // only the first page starts from below the floor
      floor = since.floor;
    }
    for (const entry of since.entries) offsets.push(entry.offset);
    if (since.entries.length < page) return floor === undefined ? { offsets } : { offsets, floor };
    at = since.entries.at(-1)!.offset;
  }
  throw new Error("more than 100 pages");
}

async function countOf(log: ReplayLog): Promise<number> {
  const since = (await log.since(GLOBAL_STREAM, 0)) as Since;
  return since.gap ? 0 : since.entries.length;
}

async function nextMillisecond(): Promise<void> {
  const now = Date.now();
  while (Date.now() <= now) await Bun.sleep(1);
}

test("--data: a clock step back kept in the file from an earlier run is still known after a restart", async () => {
  const db = openDataFile(join(dir, "restart.db"), { sync: "normal" });
  const first = new SqliteReplay(db, limits);
  for (let i = 1; i <= 6; i++) {
    if (i % 3 === 1) await nextMillisecond();
    first.append(GLOBAL_STREAM, `m${i}`);
  }
  first.flush();
  const newest = db.query<{ at: number }, []>("SELECT at FROM replay WHERE source = 'c1' ORDER BY offset DESC LIMIT 1").get()!.at;
  setSystemTime(new Date(newest - 30));
  try {
    first.append(GLOBAL_STREAM, "m7");
  } finally {
    setSystemTime();
  }
  first.close();

  const second = new SqliteReplay(db, limits);
  expect(second.epoch).toBe(first.epoch);
  const user = (newest - 30) * 1000 + 999;
  for (const page of [1, 16]) expect(await readAll(second, user, page)).toEqual({ offsets: [], floor: 7 });
  second.close();
  db.close();
});
