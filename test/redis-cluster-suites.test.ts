// The cluster suites, run again with every node's --redis at a node of a real 3-master Redis Cluster
// (useRedis() starts the kit of test/redis-cluster.ts when WEBTALK_TEST_REDIS_KIT=cluster): routing,
// order under pipelining on two nodes, sessions, presence events, leases, sweeps and SSE, unchanged.
// Left out: the suites that restart Redis itself (cluster-order-faults, cluster-redis-restart-pipeline),
// those that read or poke a single Redis's keys by their single-layout names (cluster-route-counts-churn,
// cluster-script-flush-pipeline: on the kit they would check nothing)
// and those that start a single redis-server of their own; a master's failover is tested in
// redis-cluster-mode.test.ts.

import { test } from "bun:test";
import { expectSuitesPass } from "./child-suites.ts";
import { haveRedisCluster, useRedisCluster } from "./redis-cluster.ts";

const suites = [
  "cluster-bus-cut", "cluster-held-login-race", "cluster-join-shout-other-node", "cluster-kill-restart-loop",
  "cluster-lapse-held-whisper", "cluster-online-query-drops-routes", "cluster-online-then-shout", "cluster-order", "cluster-paused-node-steals-user",
  "cluster-pipeline", "cluster-relogin-shouts", "cluster-routing", "cluster-session-limit", "cluster-sessions-presence-dead-node", "cluster-sessions-presence-keys", "cluster-sessions-presence-race",
  "cluster-sessions-racing-tabs-gap", "cluster-sessions-resume-per-tab", "cluster-sessions", "cluster-sse", "resume-unheard-sources",
].map((name) => `./test/${name}.test.ts`);

// One kit for all the files (each uses prefixes of its own): starting one per file took longer than the tests.
const kit = useRedisCluster();

test.skipIf(!haveRedisCluster)("the cluster suites pass with every node on a Redis Cluster", async () => {
  const masters = kit.masters().map((m) => m.port).join(",");
  const env = { WEBTALK_TEST_REDIS_KIT: "cluster", WEBTALK_TEST_REDIS_KIT_MASTERS: masters, WEBTALK_TEST_REDIS_CLUSTER: "1" };
  await expectSuitesPass(suites, env, 40, 600_000);
}, 660_000);
