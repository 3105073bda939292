// The State contract: every guarantee written on src/state/state.ts, as one suite that each
// implementation runs (memory, SQLite, later Redis), in the manner of unstorage's driver tests.
// Every call is awaited, so an implementation that answers with promises runs it unchanged.

import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { GLOBAL_CHANNEL, type Maybe, type State } from "../../src/state/state.ts";

export interface StateDriver {
  /** A fresh, empty state. */
  open(): Maybe<State>;
  /** Durable drivers only: closes `state` and opens the same data again, as a restart would. */
  reopen?(state: State): Maybe<State>;
  /** Runs once after the suite (remove temporary files). */
  cleanup?(): Maybe<void>;
}

export function describeStateContract(name: string, driver: StateDriver): void {
  describe(`State contract: ${name}`, () => {
    let state: State;
    beforeEach(async () => {
      state = await driver.open();
    });
    afterEach(async () => {
      await state.close();
    });
    afterAll(async () => {
      await driver.cleanup?.();
    });

    const users = async (count: number) => {
      const ids: number[] = [];
      for (let i = 0; i < count; i++) ids.push(await state.createUser(`salt-${i}`));
      return ids;
    };

    describe("IDs", () => {
      test("user and channel IDs increase and are never below their creation time in microseconds; channel 1 exists", async () => {
        const before = Date.now() * 1000;
        const ids = await users(3);
        const channels = [await state.createChannel(), await state.createChannel()];
        for (const list of [ids, channels]) {
          expect(list[0]!).toBeGreaterThanOrEqual(before);
          expect(list[1]!).toBeGreaterThan(list[0]!);
          expect(Number.isSafeInteger(list[list.length - 1]!)).toBe(true);
        }
        expect(ids[2]!).toBeGreaterThan(ids[1]!);
        expect(await state.channelExists(GLOBAL_CHANNEL)).toBe(true);
        expect(channels[0]!).not.toBe(GLOBAL_CHANNEL);
      });

      test("deleted IDs are never reused, the highest ones included", async () => {
        const [, b, c] = (await users(3)) as [number, number, number];
        expect(await state.deleteUser(c)).toBe(true);
        expect(await state.deleteUser(b)).toBe(true);
        expect(await state.createUser("s")).toBeGreaterThan(c);
        const channel = await state.createChannel();
        expect(await state.deleteChannel(channel)).toEqual([]);
        expect(await state.createChannel()).toBeGreaterThan(channel);
      });
    });

    describe("users", () => {
      test("a new user has its salt and is in channel 1", async () => {
        const id = await state.createUser("Xq3-_salt");
        expect(await state.userSalt(id)).toBe("Xq3-_salt");
        expect(await state.channelsOf(id)).toEqual([GLOBAL_CHANNEL]);
        expect(await state.members(GLOBAL_CHANNEL, 0, 10)).toEqual([id]);
      });

      test("an unknown user has no salt and no channels", async () => {
        expect(await state.userSalt(1)).toBeUndefined();
        expect(await state.channelsOf(1)).toEqual([]);
        expect(await state.deleteUser(1)).toBe(false);
      });

      test("with channel 1 deleted, new users join nothing, and channel 1 stays deleted", async () => {
        expect(await state.deleteChannel(GLOBAL_CHANNEL)).toEqual([]);
        const id = await state.createUser("s");
        expect(await state.channelsOf(id)).toEqual([]);
        expect(await state.channelExists(GLOBAL_CHANNEL)).toBe(false);
      });

      test("deleting a user removes its salt, memberships and held messages", async () => {
        const [a, b] = (await users(2)) as [number, number];
        const channel = await state.createChannel();
        await state.join(channel, a);
        await state.join(channel, b);
        await state.hold(a, "one", 10);
        await state.hold(a, "two", 10);
        expect(await state.deleteUser(a)).toBe(true);
        expect(await state.userSalt(a)).toBeUndefined();
        expect(await state.channelsOf(a)).toEqual([]);
        expect(await state.members(channel, 0, 10)).toEqual([b]);
        expect(await state.members(GLOBAL_CHANNEL, 0, 10)).toEqual([b]);
        expect(await state.takeHeld(a)).toEqual([]);
        expect(await state.counts()).toEqual({ users: 1, channels: 2, held: 0 });
        expect(await state.deleteUser(a)).toBe(false);
      });
    });

    describe("channels and memberships", () => {
      test("channel 1 exists from the start; others once created, until deleted", async () => {
        expect(await state.channelExists(GLOBAL_CHANNEL)).toBe(true);
        expect(await state.channelExists(2)).toBe(false);
        const channel = await state.createChannel();
        expect(await state.channelExists(channel)).toBe(true);
        expect(await state.memberCount(channel)).toBe(0);
      });

      test("deleting a channel returns its former members and unsubscribes them", async () => {
        const [a, b] = (await users(2)) as [number, number];
        const channel = await state.createChannel();
        await state.join(channel, b);
        await state.join(channel, a);
        expect((await state.deleteChannel(channel))?.sort((x, y) => x - y)).toEqual([a, b]);
        expect(await state.channelExists(channel)).toBe(false);
        expect(await state.channelsOf(a)).toEqual([GLOBAL_CHANNEL]);
        expect(await state.members(channel, 0, 10)).toBeUndefined();
        expect(await state.memberCount(channel)).toBeUndefined();
        expect(await state.deleteChannel(channel)).toBeUndefined();
      });

      test("join and leave are idempotent", async () => {
        const [user] = (await users(1)) as [number];
        const channel = await state.createChannel();
        expect(await state.join(channel, user)).toBe("added");
        expect(await state.join(channel, user)).toBe("ok");
        expect(await state.memberCount(channel)).toBe(1);
        expect(await state.leave(channel, user)).toBe("ok");
        expect(await state.leave(channel, user)).toBe("ok");
        expect(await state.memberCount(channel)).toBe(0);
        expect(await state.channelsOf(user)).toEqual([GLOBAL_CHANNEL]);
      });

      test("join and leave name what is missing, the channel first", async () => {
        const [user] = (await users(1)) as [number];
        expect(await state.join(7, user)).toBe("no-channel");
        expect(await state.join(7, 99)).toBe("no-channel");
        expect(await state.join(GLOBAL_CHANNEL, 99)).toBe("no-user");
        expect(await state.leave(7, user)).toBe("no-channel");
        expect(await state.leave(GLOBAL_CHANNEL, 99)).toBe("no-user");
      });

      test("channelsOf is ascending whatever the join order", async () => {
        const [user] = (await users(1)) as [number];
        const channels = [await state.createChannel(), await state.createChannel(), await state.createChannel()];
        for (const channel of [...channels].reverse()) await state.join(channel, user);
        expect(await state.channelsOf(user)).toEqual([GLOBAL_CHANNEL, ...channels]);
      });

      test("members pages ascending after an ID, up to a limit", async () => {
        const ids = await users(7);
        const channel = await state.createChannel();
        for (const id of [...ids].reverse()) await state.join(channel, id);
        expect(await state.members(channel, 0, 3)).toEqual(ids.slice(0, 3));
        expect(await state.members(channel, ids[2]!, 3)).toEqual(ids.slice(3, 6));
        expect(await state.members(channel, ids[5]!, 3)).toEqual(ids.slice(6));
        expect(await state.members(channel, ids[6]!, 3)).toEqual([]);
        expect(await state.members(channel, 0, 0)).toEqual([]);
        expect(await state.memberCount(channel)).toBe(7);
        expect(await state.members(99, 0, 3)).toBeUndefined();
      });

      test("IDs beyond any that exist, up to Infinity (a 400-digit ID), are simply unknown", async () => {
        const [user] = (await users(1)) as [number];
        const channel = await state.createChannel();
        for (const huge of [2 ** 53 + 2, 1e30, Infinity]) {
          expect(await state.userSalt(huge)).toBeUndefined();
          expect(await state.channelExists(huge)).toBe(false);
          expect(await state.join(huge, user)).toBe("no-channel");
          expect(await state.join(channel, huge)).toBe("no-user");
          expect(await state.hold(huge, "x", 10)).toBe(0);
          expect(await state.deleteUser(huge)).toBe(false);
          expect(await state.deleteChannel(huge)).toBeUndefined();
        }
        expect(await state.members(channel, 0, Infinity)).toEqual([]);
        await state.join(channel, user);
        expect(await state.members(channel, 0, Infinity)).toEqual([user]);
      });

      test("counts follows users, channels and held messages", async () => {
        expect(await state.counts()).toEqual({ users: 0, channels: 1, held: 0 });
        const [a, b] = (await users(2)) as [number, number];
        await state.createChannel();
        await state.hold(a, "x", 10);
        await state.hold(b, "y", 10);
        await state.hold(b, "z", 10);
        expect(await state.counts()).toEqual({ users: 2, channels: 2, held: 3 });
        await state.takeHeld(b);
        await state.deleteChannel(GLOBAL_CHANNEL);
        expect(await state.counts()).toEqual({ users: 2, channels: 1, held: 1 });
      });
    });

    describe("held messages", () => {
      test("are taken once, oldest first", async () => {
        const [user] = (await users(1)) as [number];
        for (const message of ["1", "2", "3"]) expect(await state.hold(user, message, 10)).toBe(0);
        expect(await state.takeHeld(user)).toEqual(["1", "2", "3"]);
        expect(await state.takeHeld(user)).toEqual([]);
        await state.hold(user, "4", 10);
        expect(await state.takeHeld(user)).toEqual(["4"]);
      });

      test("past the limit the oldest are dropped, and hold says how many", async () => {
        const [user, other] = (await users(2)) as [number, number];
        for (const message of ["1", "2", "3"]) expect(await state.hold(user, message, 3)).toBe(0);
        await state.hold(other, "other", 3);
        expect(await state.hold(user, "4", 3)).toBe(1);
        expect(await state.hold(user, "5", 3)).toBe(1);
        expect(await state.counts()).toEqual({ users: 2, channels: 1, held: 4 });
        // A lower limit than before (a restart with a smaller --queue) drops the excess at once.
        expect(await state.hold(user, "6", 1)).toBe(3);
        expect(await state.takeHeld(user)).toEqual(["6"]);
        expect(await state.takeHeld(other)).toEqual(["other"]);
      });

      test("with a limit of 0 nothing is kept", async () => {
        const [user] = (await users(1)) as [number];
        expect(await state.hold(user, "gone", 0)).toBe(1);
        expect(await state.takeHeld(user)).toEqual([]);
        expect((await state.counts()).held).toBe(0);
      });

      test("are not kept for an unknown user", async () => {
        expect(await state.hold(42, "nobody", 10)).toBe(0);
        expect(await state.takeHeld(42)).toEqual([]);
        expect((await state.counts()).held).toBe(0);
      });

      test("keep any text exactly: empty, NUL, newlines, any UTF-8, 99,990 bytes", async () => {
        const [user] = (await users(1)) as [number];
        const texts = ["", "a\u0000b", "line\r\nline", "!!", "héllo 👋 世界", "x".repeat(99_990)];
        for (const text of texts) await state.hold(user, text, 100);
        expect(await state.takeHeld(user)).toEqual(texts);
      });
    });

    describe("store", () => {
      test("store, retrieve, overwrite and clear; absent keys read as empty", async () => {
        expect(await state.retrieve("k")).toBe("");
        await state.store("k", "v1");
        expect(await state.retrieve("k")).toBe("v1");
        await state.store("k", "v2");
        expect(await state.retrieve("k")).toBe("v2");
        await state.clear("k");
        expect(await state.retrieve("k")).toBe("");
        await state.clear("never-stored");
      });

      test("keys and values are exact strings", async () => {
        await state.store("K", "upper");
        await state.store("k", "lower");
        await state.store("clé 🔑", "va\u0000lue\n!");
        await state.store("big", "v".repeat(99_980));
        expect(await state.retrieve("K")).toBe("upper");
        expect(await state.retrieve("k")).toBe("lower");
        expect(await state.retrieve("clé 🔑")).toBe("va\u0000lue\n!");
        expect(await state.retrieve("big")).toBe("v".repeat(99_980));
      });
    });

    const { reopen } = driver;
    if (reopen) {
      describe("durability (reopened as after a restart)", () => {
        test("users, salts, channels, memberships, held messages and the store are all kept", async () => {
          const [a, b, c] = (await users(3)) as [number, number, number];
          const channel = await state.createChannel();
          await state.createChannel();
          await state.join(channel, a);
          await state.join(channel, c);
          await state.leave(GLOBAL_CHANNEL, b);
          await state.deleteUser(c);
          for (const message of ["first", "second", "third"]) await state.hold(b, message, 2);
          await state.store("k", "v");
          await state.store("gone", "x");
          await state.clear("gone");
          const before = await state.counts();

          state = await reopen(state);
          expect(await state.counts()).toEqual(before);
          expect(await state.userSalt(a)).toBe("salt-0");
          expect(await state.userSalt(b)).toBe("salt-1");
          expect(await state.userSalt(c)).toBeUndefined();
          expect(await state.channelsOf(a)).toEqual([GLOBAL_CHANNEL, channel]);
          expect(await state.channelsOf(b)).toEqual([]);
          expect(await state.members(channel, 0, 10)).toEqual([a]);
          expect(await state.takeHeld(b)).toEqual(["second", "third"]);
          expect(await state.retrieve("k")).toBe("v");
          expect(await state.retrieve("gone")).toBe("");
        });

        test("IDs continue after the highest ever given, even when it was deleted", async () => {
          const [, , c] = (await users(3)) as [number, number, number];
          await state.deleteUser(c);
          const channel = await state.createChannel();
          await state.deleteChannel(channel);
          await state.deleteChannel(GLOBAL_CHANNEL);
          state = await reopen(state);
          expect(await state.createUser("s")).toBeGreaterThan(c);
          expect(await state.createChannel()).toBeGreaterThan(channel);
          expect(await state.channelExists(GLOBAL_CHANNEL)).toBe(false);
        });

        test("what was taken stays taken, and the held limit counts across restarts", async () => {
          const [user] = (await users(1)) as [number];
          await state.hold(user, "old", 3);
          await state.takeHeld(user);
          await state.hold(user, "1", 3);
          await state.hold(user, "2", 3);
          state = await reopen(state);
          await state.hold(user, "3", 3);
          expect(await state.hold(user, "4", 3)).toBe(1);
          expect(await state.takeHeld(user)).toEqual(["2", "3", "4"]);
        });
      });
    }
  });
}
