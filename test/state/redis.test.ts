// The Redis state against the shared State contract (durability included: a "restart" is a new
// RedisState on the same key prefix), with a real redis-server.

import { afterAll, beforeAll } from "bun:test";
import { RedisState } from "../../src/state/redis.ts";
import type { RedisLink } from "../../src/state/redis-link.ts";
import type { State } from "../../src/state/state.ts";
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
