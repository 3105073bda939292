// The Redis state against the shared State contract (durability included: a "restart" is a new
// RedisState on the same key prefix), with a real redis-server.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { RedisState } from "../../src/state/redis.ts";
import type { RedisLink } from "../../src/state/redis-link.ts";
import { BackendUnavailable, GLOBAL_CHANNEL, type State } from "../../src/state/state.ts";
import { link, startRedis, uniquePrefix, type TestRedis } from "../redis-server.ts";
import { describeStateContract } from "./contract.ts";

let redis: TestRedis;
let client: RedisLink;
beforeAll(async () => {
  redis = await startRedis();
  client = await link(redis);
});
afterAll(async () => {
  client.close();
  await redis.stop();
});

const prefixes = new WeakMap<State, string>();
describeStateContract("redis", {
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

// Redis may lose webtalk's data under a running node: until the node has re-established it, the
// scripts that issue IDs refuse, atomically, so no ID can meet a browser of the lost data.
describe("Redis state after a data loss", () => {
  test("IDs are refused until the new generation is adopted; channel 1 is back; IDs never go back", async () => {
    const prefix = uniquePrefix("lost");
    const state = await RedisState.open(client, prefix);
    const before = await state.createUser("s");
    let refusals = 0;
    state.onRefused(() => refusals++);
    await client.call("EVAL", [`for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end`, 0, `${prefix}*`]);
    expect(await state.sameGeneration()).toBe(false);
    await expect(Promise.resolve().then(() => state.createUser("s"))).rejects.toBeInstanceOf(BackendUnavailable);
    await expect(Promise.resolve().then(() => state.createChannel())).rejects.toBeInstanceOf(BackendUnavailable);
    const generation = await state.establish();
    expect(generation).not.toBe(state.epoch());
    expect(await state.establish()).toBe(generation); // a second node reads the same one back
    expect(await state.channelExists(GLOBAL_CHANNEL)).toBe(true);
    await expect(Promise.resolve().then(() => state.createUser("s"))).rejects.toBeInstanceOf(BackendUnavailable);
    state.adopt(generation);
    expect(await state.sameGeneration()).toBe(true);
    const after = await state.createUser("s");
    expect(after).toBeGreaterThan(before);
    expect(await state.channelsOf(after)).toEqual([GLOBAL_CHANNEL]);
    expect(refusals).toBe(3);
  });
});
