// The replay log's floors directly, in each implementation (memory, a real SQLite file, a real
// redis-server): a floor bounds a member's resume, and [leave], [killuser] and [killchannel] remove
// what they make irrelevant, so what is kept stays bounded by the memberships.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryReplay, type ReplayLimits, type ReplayLog } from "../src/core/replay.ts";
import { RedisReplay } from "../src/state/replay-redis.ts";
import { SqliteReplay } from "../src/state/replay-sqlite.ts";
import type { RedisLink } from "../src/state/redis-link.ts";
import { openDataFile } from "../src/state/sqlite-file.ts";
import { haveRedis, link, startRedis, uniquePrefix, type TestRedis } from "./redis-server.ts";

const dir = mkdtempSync(join(tmpdir(), "webtalk-floor-log-"));
const limits: ReplayLimits = { count: 100, ageMs: 60_000, bytes: 1 << 20 };
let redis: TestRedis | undefined;
let redisLink: RedisLink | undefined;
beforeAll(async () => {
  if (haveRedis) {
    redis = await startRedis();
    redisLink = await link(redis);
  }
});
afterAll(async () => {
  redisLink?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Subject {
  log: ReplayLog;
  /** How many floors are stored, as the backing store sees them. */
  stored(): Promise<number>;
}

let files = 0;
const subjects: [string, () => Promise<Subject>][] = [
  ["memory", async () => ({ log: new MemoryReplay(limits), stored: async () => -1 })],
  [
    "sqlite",
    async () => {
      const db = openDataFile(join(dir, `log-${++files}.db`), { sync: "normal" });
      const log = new SqliteReplay(db, limits);
      return { log, stored: async () => db.query<{ n: number }, []>("SELECT count(*) AS n FROM replay_floors").get()!.n };
    },
  ],
];
if (haveRedis) {
  subjects.push([
    "redis",
    async () => {
      const prefix = uniquePrefix("floorlog");
      const log = await RedisReplay.open(redisLink!, prefix, limits);
      const stored = async () => {
        const keys = (await redisLink!.call("KEYS", [`${prefix}floor*`])) as string[];
        return keys.length;
      };
      return { log, stored };
    },
  ]);
}

const ALICE = 1_796_000_000_000_001;
const BOB = 1_796_000_000_000_002;

for (const [name, open] of subjects) {
  describe(`replay floors (${name})`, () => {
    test("a floor bounds the member's resume; leave, forget and drop remove floors", async () => {
      const { log, stored } = await open();
      for (const text of ["a", "b"]) await log.append("c7", text);
      await log.joined("c7", ALICE); // floor 2
      await log.joined("c8", ALICE); // nothing numbered in c8: no floor
      await log.append("c7", "c");
      expect(await log.since("c7", 0, 16, ALICE)).toEqual({ gap: false, entries: [{ offset: 3, text: "c" }], floor: 2 });
      expect(await log.since("c7", 2, 16, ALICE)).toEqual({ gap: false, entries: [{ offset: 3, text: "c" }] });
      // Another member with no floor (a member from the start) reads the whole window.
      const whole = (await log.since("c7", 0, 16, BOB)) as { entries: unknown[] };
      expect(whole.entries).toHaveLength(3);
      expect("floor" in whole).toBe(false);
      // At the floor with nothing after it: the gap is still told.
      await log.joined("c7", BOB); // floor 3
      expect(await log.since("c7", 1, 16, BOB)).toEqual({ gap: false, entries: [], floor: 3 });
      if (name !== "memory") expect(await stored()).toBeGreaterThan(0);

      await log.left("c7", BOB);
      expect(((await log.since("c7", 0, 16, BOB)) as { entries: unknown[] }).entries).toHaveLength(3);
      await log.forget(ALICE);
      expect(((await log.since("c7", 0, 16, ALICE)) as { entries: unknown[] }).entries).toHaveLength(3);
      if (name !== "memory") expect(await stored()).toBe(0);

      await log.joined("c7", ALICE);
      await log.drop("c7");
      if (name !== "memory") expect(await stored()).toBe(0);
      await log.append("c7", "new");
      expect(await log.since("c7", 0, 16, ALICE)).toEqual({ gap: false, entries: [{ offset: 1, text: "new" }] });
    });

    test("channel 1: nothing stamped at or before the member's ID millisecond", async () => {
      const { log } = await open();
      await log.append("c1", "old");
      const born = Date.now() + 1;
      const user = born * 1000 + 5; // created in the millisecond after "old"
      while (Date.now() <= born) await Bun.sleep(1);
      await log.append("c1", "new");
      expect(await log.since("c1", 0, 16, user)).toEqual({ gap: false, entries: [{ offset: 2, text: "new" }], floor: 1 });
      // Whisper streams and readers without a member are not filtered.
      expect(((await log.since("c1", 0, 16)) as { entries: unknown[] }).entries).toHaveLength(2);
    });
  });
}
