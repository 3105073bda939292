// The Redis state against the shared State contract (durability included: a "restart" is a new
// RedisState on the same key prefix), with a real redis-server.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { RedisState } from "../../src/state/redis.ts";
import type { RedisLink } from "../../src/state/redis-link.ts";
import { BackendUnavailable, GLOBAL_CHANNEL, type State } from "../../src/state/state.ts";
import { haveRedis, link, startRedis, uniquePrefix, type TestRedis } from "../redis-server.ts";
import { describeStateContract } from "./contract.ts";

let redis: TestRedis;
let client: RedisLink;
// On a machine without redis-server (a fresh one: `npm test` must pass there) every test of this file
// is skipped (test/redis-server.ts says so in one line); .ci/run installs it and runs them all.
beforeAll(async () => {
  if (!haveRedis) return;
  redis = await startRedis();
  client = await link(redis);
});
afterAll(async () => {
  client?.close();
  await redis?.stop();
});

const prefixes = new WeakMap<State, string>();
if (haveRedis) describeStateContract("redis", {
  async open() {
    const prefix = uniquePrefix("state");
    const state = await RedisState.open(client, prefix);
    prefixes.set(state, prefix);
    return state;
  },
  async reopen(state) {
    const prefix = prefixes.get(state)!;
    const again = await RedisState.open(client, prefix);
    prefixes.set(again, prefix);
    return again;
  },
});

// Redis may lose webtalk's data, or go back in time, under a running node: until the node has
// discarded it and adopted a new generation, every change is refused, atomically.
describe.skipIf(!haveRedis)("Redis state after a data loss or a rollback", () => {
  test("changes are refused until the new generation is adopted; channel 1 is back; IDs never go back", async () => {
    const prefix = uniquePrefix("lost");
    const state = await RedisState.open(client, prefix);
    const other = await RedisState.open(client, prefix);
    const before = await state.createUser("s");
    let refusals = 0;
    state.onRefused(() => refusals++);
    await client.call("EVAL", [`for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end`, 0, `${prefix}*`]);
    const found = await state.lineage();
    expect(found).toMatchObject({ kind: "broken", cause: expect.stringContaining("lost webtalk's data") });
    await expect(Promise.resolve().then(() => state.createUser("s"))).rejects.toBeInstanceOf(BackendUnavailable);
    await expect(Promise.resolve().then(() => state.createChannel())).rejects.toBeInstanceOf(BackendUnavailable);
    const settled = await state.repair(found);
    expect(settled.generation).not.toBe(state.epoch());
    expect(Number(settled.generation)).toBeGreaterThan(Number(state.epoch()));
    // A second node finds the newer generation and adopts it without discarding anything.
    expect(await other.lineage()).toMatchObject({ kind: "newer", generation: settled.generation });
    expect(await state.channelExists(GLOBAL_CHANNEL)).toBe(true);
    await expect(Promise.resolve().then(() => state.createUser("s"))).rejects.toBeInstanceOf(BackendUnavailable);
    state.adopt(settled.generation);
    expect(await state.lineage()).toEqual({ kind: "same" });
    const after = await state.createUser("s");
    expect(after).toBeGreaterThan(before);
    expect(await state.channelsOf(after)).toEqual([GLOBAL_CHANNEL]);
    expect(refusals).toBe(3);
  });

  test("a node whose last change Redis forgot finds it went back in time, even after other nodes' changes", async () => {
    const prefix = uniquePrefix("back");
    const state = await RedisState.open(client, prefix, "node-a");
    const other = await RedisState.open(client, prefix, "node-b");
    const user = await state.createUser("s");
    await state.deleteUser(user);
    // As a restore from a dump taken before the delete: node-a's mark goes back.
    await client.call("HINCRBY", [`${prefix}writers`, "node-a", -1]);
    for (let i = 0; i < 5; i++) await other.createChannel(); // the global seq moves on past it
    expect(await other.lineage()).toEqual({ kind: "same" });
    expect(await state.lineage()).toMatchObject({ kind: "broken", cause: expect.stringMatching(/went back in time \(seq \d+ < seen \d+\)/) });
    await expect(Promise.resolve().then(() => state.join(GLOBAL_CHANNEL, user))).rejects.toBeInstanceOf(BackendUnavailable);
    // A generation older than this node's (a snapshot from before the last wipe) is broken too.
    const old = String(Number(state.epoch()) - 1);
    await client.call("SET", [`${prefix}generation`, old]);
    expect(await other.lineage()).toMatchObject({ kind: "broken", seen: old, cause: expect.stringContaining("older than this node's") });
  });

  test("a refused change leaves the node's mark where Redis went back to: every later change is refused too", async () => {
    const prefix = uniquePrefix("mark");
    const state = await RedisState.open(client, prefix, "node-a");
    const user = await state.createUser("s");
    await state.deleteUser(user);
    await client.call("HINCRBY", [`${prefix}writers`, "node-a", -1]);
    const mark = await client.call("HGET", [`${prefix}writers`, "node-a"]);
    // The guard counts the mark up before it compares: a refusal must put it back, or the second
    // change would find the mark caught up again and go through on the history Redis forgot.
    for (let i = 0; i < 3; i++) {
      await expect(Promise.resolve().then(() => state.createChannel())).rejects.toBeInstanceOf(BackendUnavailable);
      expect(await client.call("HGET", [`${prefix}writers`, "node-a"])).toBe(mark);
    }
    expect(await state.lineage()).toMatchObject({ kind: "broken" });
  });
});
