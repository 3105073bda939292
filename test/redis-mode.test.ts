// The end-to-end suites of the core, presence, resume and SSE protocols, run again against cluster nodes
// on a real Redis: the same files, in a child `bun test` whose servers all run with --redis.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { ROOT, runToExit } from "./process.ts";
import { haveRedis, startRedis, type TestRedis } from "./redis-server.ts";

const suites = ["test/control.test.ts", "test/browser.test.ts", "test/presence.test.ts", "test/resume.test.ts", "test/sessions.test.ts", "test/sse.test.ts"];

let redis: TestRedis | undefined;
beforeAll(async () => {
  if (haveRedis) redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

test.skipIf(!haveRedis)("the protocol suites pass against nodes running with --redis", async () => {
  const run = await runToExit([process.execPath, "test", ...suites], {
    cwd: ROOT,
    env: { ...process.env, WEBTALK_TEST_REDIS: redis!.url },
    timeoutMs: 120_000,
  });
  const summary = run.stdout + run.stderr;
  const passed = Number(/(\d+) pass/.exec(summary)?.[1] ?? 0);
  if (run.code !== 0) console.error(summary.split("\n").filter((l) => l.includes("(fail)") || l.includes("error")).join("\n"));
  expect(run.code).toBe(0);
  expect(summary).toMatch(/\b0 fail/);
  expect(passed).toBeGreaterThan(70);
}, 150_000);

if (!haveRedis) console.warn("redis-server not found: cluster tests skipped (.ci/run installs it)");
