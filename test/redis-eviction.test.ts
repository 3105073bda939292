// Issue 14 (maxmemory): a Redis that may evict keys could drop webtalk's users and ID counters, and
// IDs would then be handed out again. webtalk refuses to start on one unless told it is acceptable.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { createConsola } from "consola";
import { startServer } from "../src/server.ts";
import { defaultConfig, within } from "./helpers.ts";
import { MAIN, LOOPBACK, runToExit, spawnServer } from "./process.ts";
import { haveRedis, link, startRedis, uniquePrefix, type TestRedis } from "./redis-server.ts";

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

test.skipIf(!haveRedis)("a policy changed under a running node is logged as an error when the node reconnects", async () => {
  const redis = await startRedis();
  const errors: string[] = [];
  const log = createConsola({ level: 1, reporters: [{ log: (e) => void (e.level === 0 && errors.push(e.args.map(String).join(" "))) }] });
  const server = await startServer(defaultConfig({ redis: redis.url, redisPrefix: uniquePrefix("evict") }), log);
  const admin = await link(redis);
  try {
    await admin.call("CONFIG", ["SET", "maxmemory-policy", "allkeys-lru"]);
    // Drops webtalk's connections (not this one): they reconnect, and read the policy again.
    await admin.call("CLIENT", ["KILL", "SKIPME", "yes"]);
    await within(
      (async () => {
        while (!errors.some((line) => line.includes("maxmemory-policy is allkeys-lru"))) await Bun.sleep(20);
      })(),
      "the error line after the reconnect",
    );
  } finally {
    admin.close();
    await server.stop();
    await redis.stop();
  }
}, 30_000);

test.skipIf(!haveRedis)("a policy changed by CONFIG SET under a running node (no reconnect) is logged once, at the next lease renewal", async () => {
  const redis = await startRedis();
  const errors: string[] = [];
  const log = createConsola({ level: 1, reporters: [{ log: (e) => void (e.level === 0 && errors.push(e.args.map(String).join(" "))) }] });
  const server = await startServer(defaultConfig({ redis: redis.url, redisPrefix: uniquePrefix("evictset"), lease: 1 }), log);
  const admin = await link(redis);
  try {
    await admin.call("CONFIG", ["SET", "maxmemory-policy", "volatile-lru"]);
    await within(
      (async () => {
        while (!errors.some((line) => line.includes("maxmemory-policy is volatile-lru"))) await Bun.sleep(20);
      })(),
      "the error line at the next renewal",
    );
    await Bun.sleep(1_200); // a few more renewals: still one line
    expect(errors.filter((line) => line.includes("maxmemory-policy"))).toHaveLength(1);
  } finally {
    admin.close();
    await server.stop();
    await redis.stop();
  }
}, 30_000);
