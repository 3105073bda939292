// The end-to-end suites of the core, presence, resume, sessions and SSE protocols, run again against
// nodes whose --redis is a node of a real 3-master Redis Cluster (test/redis-cluster.ts): the same
// files as redis-mode.test.ts, in a child `bun test`.

import { test } from "bun:test";
import { expectSuitesPass, PROTOCOL_SUITES } from "./child-suites.ts";
import { haveRedisCluster, useRedisCluster } from "./redis-cluster.ts";


const kit = useRedisCluster();

test.skipIf(!haveRedisCluster)("the protocol suites pass against nodes on a Redis Cluster", async () => {
  await expectSuitesPass(PROTOCOL_SUITES, { WEBTALK_TEST_REDIS: kit.masters()[1]!.url, WEBTALK_TEST_REDIS_CLUSTER: "1" }, 71, 180_000);
}, 240_000);
