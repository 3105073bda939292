// The end-to-end suites of the core, presence, resume, sessions and SSE protocols, run again against
// nodes whose --redis is a node of a real 3-master Redis Cluster (test/redis-cluster.ts): the same
// files as redis-mode.test.ts, in a child `bun test`.

import { expect, test } from "bun:test";
import { ROOT, runToExit } from "./process.ts";
import { haveRedisCluster, useRedisCluster } from "./redis-cluster.ts";

const suites = ["test/control.test.ts", "test/browser.test.ts", "test/presence.test.ts", "test/resume.test.ts", "test/sessions.test.ts", "test/sse.test.ts"];

const kit = useRedisCluster();

test.skipIf(!haveRedisCluster)("the protocol suites pass against nodes on a Redis Cluster", async () => {
  const run = await runToExit([process.execPath, "test", ...suites], {
    cwd: ROOT,
    env: { ...process.env, WEBTALK_TEST_REDIS: kit.masters()[1]!.url, WEBTALK_TEST_REDIS_CLUSTER: "1" },
    timeoutMs: 180_000,
  });
  const summary = run.stdout + run.stderr;
  const passed = Number(/(\d+) pass/.exec(summary)?.[1] ?? 0);
  if (run.code !== 0) console.error(summary.split("\n").filter((l) => l.includes("(fail)") || l.includes("error")).join("\n"));
  expect(run.code).toBe(0);
  expect(summary).toMatch(/\b0 fail/);
  expect(passed).toBeGreaterThan(70);
}, 240_000);
