// Issue 14 (maxmemory): a Redis that may evict keys could drop webtalk's users and ID counters, and
// IDs would then be handed out again. webtalk refuses to start on one unless told it is acceptable.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { MAIN, runToExit, spawnServer } from "./process.ts";
import { haveRedis, startRedis, type TestRedis } from "./redis-server.ts";

const LOOPBACK = ["--public", "127.0.0.1:0", "--private", "127.0.0.1:0"];

let evicting: TestRedis | undefined;
let noConfig: TestRedis | undefined;
beforeAll(async () => {
  if (!haveRedis) return;
  evicting = await startRedis({ args: ["--maxmemory", "10mb", "--maxmemory-policy", "allkeys-lru"] });
  // As managed Redis services do: CONFIG is not available to clients.
  noConfig = await startRedis({ args: ["--rename-command", "CONFIG", ""] });
});
afterAll(async () => {
  await evicting?.stop();
  await noConfig?.stop();
});

async function expectRefused(url: string, mentions: string[]): Promise<void> {
  const run = await runToExit(["bun", MAIN, ...LOOPBACK, "--redis", url, "--redis-prefix", `evict${process.pid}:`]);
  const lines = run.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  for (const word of ["maxmemory-policy", "--redis-allow-eviction", ...mentions]) expect(lines[0]).toContain(word);
  expect(run.code).toBe(2);
}

test.skipIf(!haveRedis)("a Redis with maxmemory-policy allkeys-lru: exit 2 naming the setting; starts with --redis-allow-eviction", async () => {
  await expectRefused(evicting!.url, ["allkeys-lru"]);
  const server = await spawnServer(["bun", MAIN, ...LOOPBACK, "--redis", evicting!.url, "--redis-allow-eviction"]);
  expect(await server.stop()).toBe(0);
}, 30_000);

test.skipIf(!haveRedis)("a Redis that refuses CONFIG: exit 2 asking to check the policy; starts with --redis-allow-eviction", async () => {
  await expectRefused(noConfig!.url, ["noeviction"]);
  const server = await spawnServer(["bun", MAIN, ...LOOPBACK, "--redis", noConfig!.url, "--redis-allow-eviction"]);
  expect(await server.stop()).toBe(0);
}, 30_000);
