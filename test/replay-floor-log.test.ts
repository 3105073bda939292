// Replay floors kept by each state and replay log pair (memory; a real SQLite file; a real redis-server),
// driven as the [join], [leave], [killuser] and [killchannel] handlers drive them: a floor bounds a
// member's resume, and leaving or killing removes what it makes irrelevant, so what is kept stays
// bounded by the memberships. (End to end through real servers: replay-floor.test.ts.)

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { channelStream, MemoryReplay, type ReplayLimits, type ReplayLog } from "../src/core/replay.ts";
import { MemoryState } from "../src/state/memory.ts";
import { RedisState } from "../src/state/redis.ts";
import type { RedisLink } from "../src/state/redis-link.ts";
import { RedisReplay } from "../src/state/replay-redis.ts";
import { SqliteReplay } from "../src/state/replay-sqlite.ts";
import { SqliteState } from "../src/state/sqlite.ts";
import { openDataFile } from "../src/state/sqlite-file.ts";
import type { State } from "../src/state/state.ts";
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
  state: State;
  log: ReplayLog;
  /** How many floors the backing store holds (memory: not visible, -1). */
  stored(): Promise<number>;
}

let files = 0;
const subjects: [string, () => Promise<Subject>][] = [
  ["memory", async () => ({ state: new MemoryState(), log: new MemoryReplay(limits), stored: async () => -1 })],
  [
    "sqlite",
    async () => {
      const db = openDataFile(join(dir, `log-${++files}.db`), { sync: "normal" });
      const log = new SqliteReplay(db, limits);
      const count = () => db.query<{ n: number }, []>("SELECT count(*) AS n FROM replay_floors").get()!.n;
      return { state: new SqliteState(db), log, stored: async () => count() };
    },
  ],
];
if (haveRedis) {
  subjects.push([
    "redis",
    async () => {
      const prefix = uniquePrefix("floorlog");
      const state = await RedisState.open(redisLink!, prefix);
      const log = await RedisReplay.open(redisLink!, prefix, limits);
      // Each floor is a field of its channel's hash and a member of its user's set: both are counted,
      // and must agree, so neither is ever left behind.
      const stored = async () => {
        let [fields, members] = [0, 0];
        for (const key of (await redisLink!.call("KEYS", [`${prefix}floor*`])) as string[]) {
          if (key.includes(":floors:")) members += Number(await redisLink!.call("SCARD", [key]));
          else fields += Number(await redisLink!.call("HLEN", [key]));
        }
        expect(members).toBe(fields);
        return fields;
      };
      return { state, log, stored };
    },
  ]);
}

/** What the [join] handler does. */
async function joinUser(s: Subject, channel: number, user: number): Promise<void> {
  if ((await s.state.join(channel, user)) === "added") await s.log.joined(channelStream(channel), user);
}

async function leaveUser(s: Subject, channel: number, user: number): Promise<void> {
  if ((await s.state.leave(channel, user)) === "ok") await s.log.left(channelStream(channel), user);
}

for (const [name, open] of subjects) {
  describe(`replay floors (${name})`, () => {
    test("a floor bounds the member's resume; leave, killuser and killchannel leave none behind", async () => {
      const s = await open();
      const { log, state } = s;
      const [alice, bob] = [await state.createUser("a"), await state.createUser("b")];
      const [seven, eight] = [await state.createChannel(), await state.createChannel()];
      const c7 = channelStream(seven);
      for (const text of ["a", "b"]) await log.append(c7, text);
      await joinUser(s, seven, alice); // floor 2
      await joinUser(s, seven, alice); // redundant: the floor stays
      await joinUser(s, eight, alice); // nothing numbered in 8: no floor
      await log.append(c7, "c");
      await joinUser(s, seven, alice); // redundant after a message: still 2
      expect(await log.since(c7, 0, 16, alice)).toEqual({ gap: false, entries: [{ offset: 3, text: "c" }], floor: 2 });
      expect(await log.since(c7, 2, 16, alice)).toEqual({ gap: false, entries: [{ offset: 3, text: "c" }] });
      // A reader with no floor reads the whole window.
      const whole = (await log.since(c7, 0, 16, bob)) as { entries: unknown[] };
      expect(whole.entries).toHaveLength(3);
      expect("floor" in whole).toBe(false);
      // At the floor with nothing after it: the gap is still told.
      await joinUser(s, seven, bob); // floor 3
      expect(await log.since(c7, 1, 16, bob)).toEqual({ gap: false, entries: [], floor: 3 });
      if (name !== "memory") expect(await s.stored()).toBe(2);

      await leaveUser(s, seven, bob);
      expect(((await log.since(c7, 0, 16, bob)) as { entries: unknown[] }).entries).toHaveLength(3);
      if (name !== "memory") expect(await s.stored()).toBe(1);
      await state.deleteUser(alice);
      await log.forget(alice);
      expect(((await log.since(c7, 0, 16, alice)) as { entries: unknown[] }).entries).toHaveLength(3);
      if (name !== "memory") expect(await s.stored()).toBe(0);

      await joinUser(s, seven, bob);
      await state.deleteChannel(seven);
      await log.drop(c7);
      if (name !== "memory") expect(await s.stored()).toBe(0);
      await log.append(c7, "new");
      expect(await log.since(c7, 0, 16, bob)).toEqual({ gap: false, entries: [{ offset: 1, text: "new" }] });
    });

    test("channel 1: nothing stamped at or before the member's ID millisecond", async () => {
      const { log } = await open();
      await log.append("c1", "old");
      const born = Date.now() + 1;
      const user = born * 1000 + 5; // an ID issued in the millisecond after "old"
      while (Date.now() <= born) await Bun.sleep(1);
      await log.append("c1", "new");
      expect(await log.since("c1", 0, 16, user)).toEqual({ gap: false, entries: [{ offset: 2, text: "new" }], floor: 1 });
      // Read with no member (a user's own whisper stream is read so), nothing is left out.
      expect(((await log.since("c1", 0, 16)) as { entries: unknown[] }).entries).toHaveLength(2);
    });
  });
}
