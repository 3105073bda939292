// The end-to-end suites of the core, presence, resume and SSE protocols, run again against cluster nodes
// on a real Redis: the same files, in a child `bun test` whose servers all run with --redis.

import { afterAll, beforeAll, test } from "bun:test";
import { expectSuitesPass, PROTOCOL_SUITES } from "./child-suites.ts";
import { haveRedis, startRedis, type TestRedis } from "./redis-server.ts";


let redis: TestRedis | undefined;
beforeAll(async () => {
  if (haveRedis) redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

test.skipIf(!haveRedis)("the protocol suites pass against nodes running with --redis", async () => {
  await expectSuitesPass(PROTOCOL_SUITES, { WEBTALK_TEST_REDIS: redis!.url }, 71, 120_000);
}, 150_000);

if (!haveRedis) console.warn("redis-server not found: cluster tests skipped (.ci/run installs it)");
